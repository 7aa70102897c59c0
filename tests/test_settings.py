"""Typed settings and bad input files: one line on stderr, exit code 2, nothing half-written;
a user's own folder of sequences; the thread settings; one copy of each rule."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.cli import main
from protocol.config import check_value
from protocol.errors import HarnessError, did_you_mean

from conftest import SHARED_DATA


def refused(capsys, argv: list[str], *fragments: str) -> str:
    """The command exits 2 with one line on stderr holding every fragment."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def results_written() -> list[Path]:
    return list(Path(os.environ["HARNESS_RESULTS"]).glob("runs/*"))


@pytest.mark.parametrize("argv, fragments", [
    (["run", "-m", "sasrec", "hidden=abc"], ("hidden='abc'", "an integer (default 128)")),
    (["run", "-m", "sasrec", "train.valid_metric=auc"], ("valid_metric='auc'", "hit@K or ndcg@K")),
    (["run", "-m", "pop", "train.max_epochs=abc"], ("max_epochs='abc'", "an integer")),
    (["run", "-m", "sasrec", "train.full_ranking=1"], ("full_ranking=1", "true or false")),
    (["run", "-m", "sasrec", "train.threads=-1"], ("threads=-1", "at least 0")),
    (["run", "-m", "sasrec", "train.batch_size=128"], ("batch_size is a setting of model 'sasrec'",
                                                       "write batch_size=128 without 'train.'")),
    (["run", "-m", "sasrec", "max_epochs=3"], ("write train.max_epochs=3",)),
    (["data", "prepare", "negative_seed=abc"], ("negative_seed='abc'", "an integer (default 2024)")),
    (["data", "prepare", "tail_threshold=x"], ("tail_threshold='x'", "an integer (default 4)")),
    (["data", "prepare", "recipe=kcor"], ("recipe='kcor'", "one of llmemb, kcore, none")),
])
def test_a_bad_setting_is_one_line_before_anything_runs(capsys, argv, fragments):
    before = results_written()
    refused(capsys, argv, *fragments)
    assert results_written() == before


def test_cuda_on_a_torch_without_it_is_refused(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    refused(capsys, ["run", "-m", "sasrec", "train.device=cuda:1"], "device='cuda:1'", "auto or cpu")


def test_types_follow_the_default():
    assert check_value("m", "lr", 1, 0.001) == 1.0 and isinstance(check_value("m", "lr", 1, 0.001), float)
    assert check_value("m", "lr", "1e-3", 0.001) == 0.001  # YAML 1.1 reads 1e-3 as a string
    assert check_value("m", "hidden", 64, 128) == 64
    for value, default in ((True, 128), (1.5, 128), ("64", 128), (1, True), (True, 0.1), ("x", 0.1)):
        with pytest.raises(HarnessError, match="is not accepted"):
            check_value("m", "k", value, default)
    with pytest.raises(HarnessError, match="one of a, b"):
        check_value("m", "k", "c", "a", ("a", "b"))


def test_extractor_settings_are_typed():
    from extractors.registry import EXTRACTORS

    with pytest.raises(HarnessError, match="batch_size='big' is not accepted"):
        EXTRACTORS.get("base")(batch_size="big")


def test_did_you_mean_is_one_helper():
    assert did_you_mean("hiden", ["hidden", "dropout"]) == " Did you mean 'hidden'?"
    assert did_you_mean("zzz", ["hidden"]) == ""


# -- input files ---------------------------------------------------------------------------------
def sequences_folder(root: Path, lines: bytes, items: str = "a b c d e") -> Path:
    root.mkdir()
    (root / "sequences.txt").write_bytes(lines)
    (root / "items.tsv").write_text("item_id\ttitle\n" + "".join(f"{i}\tItem {i}\n" for i in items.split()))
    return root


def prepared_named(name: str) -> list[Path]:
    return list((Path(os.environ["HARNESS_ARTIFACTS"]) / "datasets").glob(f"*{name}*"))


@pytest.mark.parametrize("name, lines, fragments", [
    ("latin1", b"u1 a b c\nu2 a \xe9 b\n", (":2:", "byte 0xe9 is not UTF-8")),
    ("twice", b"u1 a b c\nu2 a b c\nu1 d e\n", ("sequences.txt:3:", "user 'u1' also has line 1")),
    ("unknown", b"u1 a b c\nu2 a b z\n", ("sequences.txt:2:", "item 'z' has no row in", "items.tsv")),
])
def test_a_bad_sequences_file_is_one_line_and_leaves_nothing(capsys, tmp_path, name, lines, fragments):
    folder = sequences_folder(tmp_path / name, lines)
    err = refused(capsys, ["data", "prepare", "--dataset", str(folder), "n_negatives=1"], *fragments)
    assert "meta" not in err
    assert prepared_named(name) == []


def test_a_folder_is_a_data_set_with_the_5core_settings(capsys, tmp_path):
    lines = b"u1 a b c\nu2 b c d\nu3 c d e a\nu4 e a b\n"
    folder = sequences_folder(tmp_path / "shop", lines)
    assert main(["data", "prepare", "--dataset", str(folder), "--name", "myshop", "n_negatives=1"]) == 0
    out = capsys.readouterr().out
    assert "assumed recipe=none, tail_threshold=4, n_negatives=1, negative_seed=2024" in out
    from protocol.data.dataset import Dataset

    (path,) = prepared_named("myshop")
    dataset = Dataset(path)
    assert (dataset.name, dataset.n_users, dataset.n_items) == ("myshop", 4, 5)
    assert dataset.meta["recipe"]["recipe"] == "none"  # every interaction kept: 13 rows
    assert dataset.meta["stats"]["interactions"] == 13


@pytest.mark.skipif(not (SHARED_DATA / "amazon-toys-5core").exists(), reason="needs ../shared/data")
def test_a_5core_folder_gets_the_settings_of_its_config():
    from protocol.data.spec import dataset_spec, folder_spec

    configured = dataset_spec("toys-5core")
    assert folder_spec(str(SHARED_DATA / "amazon-toys-5core")).recipe_settings() == configured.recipe_settings()


# -- threads and memory --------------------------------------------------------------------------
def test_workers_divide_the_cores():
    from harness.executors import job_threads

    assert job_threads(0, 2, cores=8) == 4
    assert job_threads(0, 16, cores=8) == 1
    assert job_threads(2, 2, cores=4) == 2
    with pytest.raises(HarnessError, match="train.threads=3 with 2 workers asks for 6 threads on 4 cores"):
        job_threads(3, 2, cores=4)


def test_threads_apply_inside_the_run_only():
    from protocol.threads import torch_threads

    before = torch.get_num_threads()
    with torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with torch_threads(0):
        assert torch.get_num_threads() == before


def test_pop_records_its_peak_memory(mini_beauty, tmp_path):
    from harness.runner import RunSpec, execute
    from protocol.store import ResultStore

    spec = RunSpec.resolve("pop", "beauty", "base", "mini", {"train.progress": False})
    out = execute(spec, store=ResultStore(tmp_path), dataset=mini_beauty)
    peak = out["manifest"]["peak_memory_mb"]
    # at least the interpreter with torch and the data set loaded (over 100 MB), below 64 GB
    assert 100 < peak < 65536


# -- one copy of each rule -----------------------------------------------------------------------
def test_positions_start_as_small_as_items(mini_beauty):
    from recommenders.sasrec import SASRec

    torch.manual_seed(0)
    model = SASRec(mini_beauty, max_len=50, hidden=64)
    for table in (model.position.weight, model.item_encoder.table.weight[:-1]):
        assert 0.018 < table.std().item() < 0.022  # N(0, 0.02), not nn.Embedding's N(0, 1)


def test_rat_alignment_is_cmsa_and_imports_no_transformers():
    code = ("import sys; import recommenders.rat as r; from extractors.sda.loss import cmsa; "
            "assert r.cmsa is cmsa; print([m for m in ('transformers', 'peft') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
