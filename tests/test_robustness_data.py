"""Issue 14, data and store side: every bad input and damaged file ends in one line naming the fix.

Each case runs through the CLI in-process and checks the promise of the README: exit 2, exactly one
`error:` line on stderr naming the file or setting and the fix, no traceback, nothing new or
half-written left behind; where the line names a command, running that command must work. The
data sets are tiny folders (sequences.txt + items.tsv) written here; runs are `pop` or a one-epoch
SASRec. Artifacts and results go to per-test folders, so damage never reaches other tests.
"""
from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main

N_USERS, N_ITEMS, PER_USER = 40, 200, 5


def write_folder(folder: Path, users: int = N_USERS) -> Path:
    """A sequences source: user u buys PER_USER items spread over the catalogue (no repeats)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [" ".join([f"u{u}", *(f"i{(u * 7 + k * 31) % N_ITEMS}" for k in range(PER_USER))])
             for u in range(users)]
    (folder / "sequences.txt").write_text("\n".join(lines) + "\n")
    rows = ["item_id\ttitle\tcategories", *(f"i{i}\tItem {i}\tA > B" for i in range(N_ITEMS))]
    (folder / "items.tsv").write_text("\n".join(rows) + "\n")
    return folder


def cli(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error(rc: int, err: str, *names: str) -> str:
    """The single `error:` line of a refusal, checked to hold every one of `names`."""
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def named_command(line: str) -> list[str]:
    """The harness command an error line names (between backticks), as CLI arguments."""
    command = re.search(r"`(python -m harness [^`]+)`", line)
    assert command, line
    return shlex.split(command.group(1))[3:]


def snapshot(*roots: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under `roots` (read with os, which tests that
    simulate unreadable files leave alone)."""
    out = {}
    for root in map(str, roots):
        for folder, dirs, files in os.walk(root):
            out.update({os.path.join(folder, d): None for d in dirs})
            for name in files:
                with open(os.path.join(folder, name), "rb") as f:
                    out[os.path.join(folder, name)] = f.read()
    return out


def no_temporaries(*roots: Path) -> None:
    left = [p for root in roots for p in Path(root).rglob(".*.tmp")]
    assert not left, left


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Fresh artifacts and results folders for one test, and a source folder beside them."""
    art, res = tmp_path / "artifacts", tmp_path / "results"
    monkeypatch.setenv("HARNESS_ARTIFACTS", str(art))
    monkeypatch.setenv("HARNESS_RESULTS", str(res))
    return {"art": art, "res": res, "shop": write_folder(tmp_path / "shop")}


def refused_without_trace(capsys, places, argv, *names) -> str:
    """Run `argv`, check its one error line, and that the store and source are as they were."""
    roots = (places["art"], places["res"], places["shop"])
    before = snapshot(*roots)
    rc, _, err = cli(capsys, *argv)
    line = one_error(rc, err, *names)
    assert snapshot(*roots) == before
    no_temporaries(*roots)
    return line


# --- 1. data loss -------------------------------------------------------------------------------

def user_folder(tmp_path) -> Path:
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return folder


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_prepare_out_holding_other_files_is_refused_and_intact(capsys, places, tmp_path, force):
    mine = user_folder(tmp_path)
    before = snapshot(mine)
    refused_without_trace(capsys, places, ["data", "prepare", "--dataset", places["shop"], "--out", mine, *force],
                          f"--out {mine}", "notes.txt", "new or empty folder")
    assert snapshot(mine) == before


@pytest.mark.parametrize("inside", ["", "sub"])
@pytest.mark.parametrize("force", [[], ["--force"]])
def test_prepare_never_writes_into_its_source(capsys, places, inside, force):
    out = places["shop"] / inside if inside else places["shop"]
    refused_without_trace(capsys, places, ["data", "prepare", "--dataset", places["shop"], "--out", out, *force],
                          f"--out {out}", "source folder", "outside")
    assert sorted(p.name for p in places["shop"].iterdir()) == ["items.tsv", "sequences.txt"]


@pytest.mark.parametrize("below", ["", "sub"])
def test_prepare_out_that_is_or_lies_under_a_file_is_refused(capsys, places, tmp_path, below):
    target = tmp_path / "report.txt"
    target.write_text("keep me\n")
    out = target / below if below else target
    refused_without_trace(capsys, places, ["data", "prepare", "--dataset", places["shop"], "--out", out, "--force"],
                          f"--out {out}", f"{target} is a file")
    assert target.read_text() == "keep me\n"


def test_prepare_out_may_be_empty_or_a_prepared_set(capsys, places, tmp_path):
    """The refusals above leave the intended uses alone: a new or empty folder, and --force over a
    prepared data set."""
    out = tmp_path / "empty"
    out.mkdir()
    assert cli(capsys, "data", "prepare", "--dataset", places["shop"], "--out", out)[0] == 0
    assert (out / "meta.json").is_file()
    assert cli(capsys, "data", "prepare", "--dataset", places["shop"], "--out", out, "--force")[0] == 0
    assert (out / "interactions.csv").is_file()


def test_export_out_that_is_a_file_is_refused(capsys, places, tmp_path):
    target = tmp_path / "export.txt"
    target.write_text("keep me\n")
    refused_without_trace(capsys, places, ["data", "export", "--dataset", places["shop"], "--format", "recbole",
                                           "--out", target], str(target), "not a folder")
    assert target.read_text() == "keep me\n"


def test_export_never_overwrites_a_file_without_force(capsys, places, tmp_path):
    prepared_dir(capsys, places)
    out = tmp_path / "recbole"
    out.mkdir()
    (out / "shop.inter").write_text("mine\n")
    (out / "other.txt").write_text("other\n")
    refused_without_trace(capsys, places, ["data", "export", "--dataset", places["shop"], "--format", "recbole",
                                           "--out", out], "shop.inter", "--force")
    assert (out / "shop.inter").read_text() == "mine\n" and sorted(p.name for p in out.iterdir()) == [
        "other.txt", "shop.inter"]
    assert cli(capsys, "data", "export", "--dataset", places["shop"], "--format", "recbole", "--out", out,
               "--force")[0] == 0
    assert (out / "shop.inter").read_text().startswith("user_id:token")
    assert (out / "other.txt").read_text() == "other\n"


def test_stats_csv_folder_or_foreign_file_is_refused(capsys, places, tmp_path):
    refused_without_trace(capsys, places, ["data", "stats", "--dataset", places["shop"], "--csv", tmp_path],
                          f"--csv {tmp_path}", "is a folder")
    foreign = tmp_path / "numbers.csv"
    foreign.write_text("a,b\n1,2\n")
    refused_without_trace(capsys, places, ["data", "stats", "--dataset", places["shop"], "--csv", foreign],
                          str(foreign), "did not write")
    assert foreign.read_text() == "a,b\n1,2\n"
    ours = tmp_path / "stats.csv"
    for _ in range(2):  # a row `data stats` wrote is its own to replace
        assert cli(capsys, "data", "stats", "--dataset", places["shop"], "--csv", ours)[0] == 0
    assert ours.read_text().startswith("dataset,users,items")


@pytest.mark.parametrize("command", [["diagnose", "--extractor", "base"], ["analyze", "gradients"]])
def test_other_csv_outputs_refuse_a_folder_or_foreign_file(capsys, places, tmp_path, command):
    """The audit of section 1: every user-given output path, refused before any work."""
    foreign = tmp_path / "mine.csv"
    foreign.write_text("a,b\n1,2\n")
    for target, says in ((tmp_path, "is a folder"), (foreign, "did not write")):
        refused_without_trace(capsys, places, [*command, "--dataset", places["shop"], "--csv", target],
                              f"--csv {target}", says)
    assert foreign.read_text() == "a,b\n1,2\n"


# --- 3. bad data inputs --------------------------------------------------------------------------

def test_negative_seed_below_zero_is_one_line(capsys, places):
    refused_without_trace(capsys, places, ["data", "prepare", "--dataset", places["shop"], "negative_seed=-1"],
                          "negative_seed=-1", "at least 0")


def test_empty_items_file_names_the_file(capsys, places):
    (places["shop"] / "items.tsv").write_text("")
    refused_without_trace(capsys, places, ["data", "prepare", "--dataset", places["shop"]],
                          str(places["shop"] / "items.tsv"), "empty", "item_id")


def test_tab_inside_a_title_names_the_file_and_line(capsys, places):
    items = places["shop"] / "items.tsv"
    lines = items.read_text().splitlines()
    lines[5] = lines[5].replace("Item 4", "Item\t4")  # line 6 of the file
    items.write_text("\n".join(lines) + "\n")
    refused_without_trace(capsys, places, ["data", "prepare", "--dataset", places["shop"]],
                          f"{items}:6:", "4 tab-separated fields", "header has 3")


def test_unreadable_source_file_is_one_line(capsys, places, monkeypatch):
    """Tests run as root, which reads any file: the refusal is simulated at the read."""
    items = places["shop"] / "items.tsv"
    real = Path.read_bytes

    def read_bytes(path):
        if path == items:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    refused_without_trace(capsys, places, ["data", "prepare", "--dataset", places["shop"]],
                          f"cannot read {items}", "Permission denied", "chmod")


def test_unreadable_source_folder_is_one_line(capsys, places, monkeypatch):
    real = Path.is_file

    def is_file(path):
        if places["shop"] in path.parents:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(Path, "is_file", is_file)
    refused_without_trace(capsys, places, ["data", "prepare", "--dataset", places["shop"]],
                          f"cannot read {places['shop']}", "Permission denied")


def test_a_folder_where_a_file_belongs_is_one_line(capsys, places):
    (places["shop"] / "items.tsv").unlink()
    (places["shop"] / "items.tsv").mkdir()
    refused_without_trace(capsys, places, ["data", "prepare", "--dataset", places["shop"]],
                          str(places["shop"] / "items.tsv"), "is a folder")


# --- 4. damaged state ----------------------------------------------------------------------------

def prepared_dir(capsys, places) -> Path:
    rc, out, _ = cli(capsys, "data", "prepare", "--dataset", places["shop"])
    assert rc == 0
    return Path(out.strip().splitlines()[-1].split(" -> ")[1])


@pytest.mark.parametrize("file, damage", [
    ("meta.json", lambda p: p.write_text("{not json")),
    ("negatives_test.npy", lambda p: p.write_bytes(p.read_bytes()[:200])),
    ("interactions.csv", lambda p: p.write_bytes(p.read_bytes()[:-40])),  # still parses: only the hash tells
])
def test_damaged_data_set_names_the_file_and_the_command_that_rebuilds_it(capsys, places, file, damage):
    folder = prepared_dir(capsys, places)
    damage(folder / file)
    lines = []
    for argv in (["data", "prepare", "--dataset", places["shop"]], ["data", "stats", "--dataset", places["shop"]],
                 ["data", "stats", "--dataset", folder]):
        line = refused_without_trace(capsys, places, argv, str(folder / file), "damaged", "--force")
        # by path, a garbage meta.json leaves no trace of the source: the command's form is named
        source = f"--dataset {places['shop']}" if (file, argv[-1]) != ("meta.json", folder) else "SOURCE"
        assert source in line
        lines.append(line)
    rc, _, err = cli(capsys, *named_command(lines[0]))  # the command it names rebuilds it
    assert rc == 0, err
    assert cli(capsys, "data", "stats", "--dataset", places["shop"])[0] == 0


def test_data_set_prepared_before_per_file_hashes_is_checked_whole(capsys, places):
    folder = prepared_dir(capsys, places)
    meta = json.loads((folder / "meta.json").read_text())
    del meta["files"]
    (folder / "meta.json").write_text(json.dumps(meta))
    assert cli(capsys, "data", "stats", "--dataset", places["shop"])[0] == 0  # intact: accepted
    interactions = folder / "interactions.csv"
    interactions.write_bytes(interactions.read_bytes()[:-40])
    refused_without_trace(capsys, places, ["data", "stats", "--dataset", places["shop"]],
                          f"{folder} is damaged", "interactions.csv", f"--dataset {places['shop']}", "--force")


def run_argv(places, *extra) -> list:
    return ["run", "--model", "sasrec", "--dataset", places["shop"], "hidden=8", "n_heads=1", "max_len=8",
            "train.max_epochs=1", "train.progress=false", *extra]


def test_damaged_checkpoint_is_named_and_force_recovers(capsys, places):
    rc, _, err = cli(capsys, *run_argv(places))
    assert rc == 0, err
    (run_dir,) = (places["res"] / "runs").iterdir()
    shutil.rmtree(run_dir)  # an interrupted run: no results, a checkpoint left behind
    checkpoint = places["art"] / "checkpoints" / f"{run_dir.name}.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.write_bytes(b"PK\x03\x04 cut short")
    refused_without_trace(capsys, places, run_argv(places), str(checkpoint), "damaged", "--force")
    rc, _, err = cli(capsys, *run_argv(places, "--force"))
    assert rc == 0, err
    assert (run_dir / "manifest.json").is_file() and not checkpoint.exists()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A results folder with two finished `pop` runs on one data set (keys differ by lr)."""
    root = tmp_path_factory.mktemp("two_runs")
    shop = write_folder(root / "shop")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_ARTIFACTS", str(root / "artifacts"))
        mp.setenv("HARNESS_RESULTS", str(root / "results"))
        for lr in (0.001, 0.002):
            assert main(["run", "--model", "pop", "--dataset", str(shop), f"lr={lr}"]) == 0
    return root


@pytest.fixture
def stored(two_runs, tmp_path, monkeypatch):
    """A copy of `two_runs` for one test: its run keys, folders and source."""
    root = tmp_path / "store"
    shutil.copytree(two_runs, root)
    monkeypatch.setenv("HARNESS_ARTIFACTS", str(root / "artifacts"))
    monkeypatch.setenv("HARNESS_RESULTS", str(root / "results"))
    keys = sorted(p.name for p in (root / "results" / "runs").iterdir())
    return {"keys": keys, "res": root / "results", "art": root / "artifacts", "shop": root / "shop"}


@pytest.mark.parametrize("hashed", [True, False])
def test_garbage_metrics_of_one_run_costs_no_other_run(capsys, stored, hashed):
    bad, good = stored["keys"]
    if not hashed:
        forget_hashes(stored, bad)
    (stored["res"] / "runs" / bad / "metrics.csv").write_text("garbage\n")
    rc, _, err = cli(capsys, "run", "--model", "pop", "--dataset", stored["shop"], "lr=0.003")
    assert rc == 0, err  # the new run is stored; the damaged one is named
    assert "warning:" in err and bad in err and "metrics.csv" in err and "Traceback" not in err
    new = set(p.name for p in (stored["res"] / "runs").iterdir()) - {bad, good}
    assert len(new) == 1 and (stored["res"] / "runs" / new.pop() / "manifest.json").is_file()
    index = (stored["res"] / "metrics.csv").read_text()
    assert good in index and bad not in index
    rc, out, err = cli(capsys, "results")
    one_error(rc, err, bad, "metrics.csv", "damaged", "--force")
    assert good in out and "runs under" in out and bad not in out


@pytest.mark.parametrize("damage", ["{cut", "[]"])
def test_garbage_manifest_is_named_by_results_compare_and_run(capsys, stored, damage):
    bad, good = stored["keys"]
    manifest = stored["res"] / "runs" / bad / "manifest.json"
    bad_lr = json.loads(manifest.read_text())["spec"]["params"]["lr"]  # the setting that made it
    manifest.write_text(damage)
    before = snapshot(stored["res"])
    for argv in (["results"], ["compare", good, bad],
                 ["run", "--model", "pop", "--dataset", stored["shop"], f"lr={bad_lr}"]):
        rc, _, err = cli(capsys, *argv)
        one_error(rc, err, str(manifest), "damaged")
    assert "--force" in err and snapshot(stored["res"]) == before
    rc, _, err = cli(capsys, "run", "--model", "pop", "--dataset", stored["shop"], "lr=0.003")
    assert rc == 0 and "warning:" in err and str(manifest) in err  # a new run is stored beside it
    rc, _, err = cli(capsys, "run", "--model", "pop", "--dataset", stored["shop"], f"lr={bad_lr}", "--force")
    assert rc == 0, err
    assert cli(capsys, "compare", good, bad)[0] == 0


def forget_hashes(stored, key: str) -> None:
    """Make run `key` look stored before manifests recorded their files' hashes."""
    manifest = stored["res"] / "runs" / key / "manifest.json"
    content = json.loads(manifest.read_text())
    del content["files"]
    manifest.write_text(json.dumps(content))


@pytest.mark.parametrize("hashed", [True, False])
def test_truncated_per_user_file_is_named_by_compare(capsys, stored, hashed):
    bad, good = stored["keys"]
    if not hashed:
        forget_hashes(stored, bad)
    per_user = stored["res"] / "runs" / bad / "per_user.csv.gz"
    per_user.write_bytes(per_user.read_bytes()[:60])
    with pytest.raises((EOFError, OSError)):  # the damage is real: gzip cannot read it
        gzip.decompress(per_user.read_bytes())
    rc, _, err = cli(capsys, "compare", good, bad)
    one_error(rc, err, str(per_user), "damaged")


def test_results_folder_that_cannot_be_written_is_refused_before_training(capsys, places, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("HARNESS_RESULTS", str(blocker / "results"))
    prepared_dir(capsys, places)  # the data set may be prepared; nothing may be trained
    refused_without_trace(capsys, places, run_argv(places), str(blocker), "HARNESS_RESULTS")
    assert not (places["art"] / "checkpoints").exists()


def test_read_only_results_folder_is_refused_by_run_and_grid(capsys, places, monkeypatch):
    """chmod does not stop root: os.access is what the check asks, so it answers "no" here."""
    assert cli(capsys, "grid", "--model", "pop", "--dataset", places["shop"])[0] == 0
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path) == places["res"] or
                        places["res"] in Path(path).parents else real(path, mode, **kw))
    refused_without_trace(capsys, places, run_argv(places), str(places["res"]), "writ")
    assert not (places["art"] / "checkpoints").exists()
    refused_without_trace(capsys, places, ["grid", "--model", "pop", "--dataset", places["shop"]],
                          str(places["res"]), "writ")


# --- 5. messages that name the right fix, and quiet oddities -------------------------------------

def test_stale_folder_data_set_names_its_folder(capsys, places):
    prepared_dir(capsys, places)
    items = places["shop"] / "items.tsv"
    items.write_text(items.read_text().replace("Item 3\t", "Item three\t"))
    os.utime(items)  # newer than the preparation
    line = refused_without_trace(capsys, places, ["data", "stats", "--dataset", places["shop"]],
                                 "is stale", str(items))
    assert named_command(line) == ["data", "prepare", "--dataset", str(places["shop"]), "--force"]
    assert cli(capsys, *named_command(line))[0] == 0
    assert cli(capsys, "data", "stats", "--dataset", places["shop"])[0] == 0


def test_folder_name_that_cannot_name_a_data_set_names_a_command_that_works(capsys, places, tmp_path):
    odd = write_folder(tmp_path / "my shop é")
    line = refused_without_trace(capsys, places, ["run", "--model", "pop", "--dataset", odd], "my shop é")
    assert "give --name" not in line
    argv = named_command(line)
    assert argv == ["data", "prepare", "--dataset", str(odd), "--name", "my_shop_e"]
    rc, out, _ = cli(capsys, *argv)
    assert rc == 0
    prepared = out.strip().splitlines()[-1].split(" -> ")[1]
    assert cli(capsys, "run", "--model", "pop", "--dataset", prepared)[0] == 0


def test_missing_text_model_weights_name_the_text_model_setting(capsys, places, tmp_path):
    rc, _, err = cli(capsys, "extract", "--extractor", "base", "--dataset", places["shop"],
                     f"text_model={tmp_path / 'no-model'}")
    # the image half runs first and warns that this folder has no images: not this test's subject
    err = "\n".join(line for line in err.splitlines() if not line.startswith("warning: "))
    line = one_error(rc, err, str(tmp_path / "no-model"), "text_model=")
    assert " model=" not in line


def test_byte_order_mark_is_not_part_of_the_first_user_or_column(capsys, places):
    for name in ("sequences.txt", "items.tsv"):
        path = places["shop"] / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    folder = prepared_dir(capsys, places)
    first_user = (folder / "users.csv").read_text().splitlines()[1]
    assert first_user == "0,u0"


def test_conflicting_duplicate_item_rows_are_refused_identical_ones_said(capsys, places):
    items = places["shop"] / "items.tsv"
    text = items.read_text()
    items.write_text(text + "i7\tItem 7\tA > B\n")  # identical to line 9
    rc, out, err = cli(capsys, "data", "prepare", "--dataset", places["shop"])
    assert rc == 0, err
    assert "1 rows repeat an earlier row" in out
    items.write_text(text + "i7\tAnother title\tA > B\n")  # line 202 says something else
    refused_without_trace(capsys, places, ["data", "prepare", "--dataset", places["shop"], "--force"],
                          f"{items}:{N_ITEMS + 2}:", "'i7'", "line 9")


def test_users_dropped_for_short_histories_are_counted(capsys, places):
    seq = places["shop"] / "sequences.txt"
    seq.write_text(seq.read_text() + "short1 i1 i2\nshort2 i3\n")
    rc, out, _ = cli(capsys, "data", "prepare", "--dataset", places["shop"])
    assert rc == 0
    assert f"dropped 2 of {N_USERS + 2} users" in out
    assert f"prepared shop: {N_USERS} users" in out


@pytest.mark.parametrize("word", ["extra", "x=1"])
def test_results_refuses_words_it_would_ignore(capsys, places, word):
    refused_without_trace(capsys, places, ["results", word], f"'{word}'", "--model")


def test_image_warning_without_examples_has_no_empty_example(capsys):
    from extractors.images import ImageReport

    ImageReport(missing=3).warn(10)
    err = capsys.readouterr().err
    assert "3 of 10 item images" in err and "e.g." not in err


def test_feature_set_with_reordered_rows_is_refused(capsys, places, tmp_path):
    from protocol.data.prepare import load_dataset
    from protocol.featureset import FeatureSet

    dataset = load_dataset(str(places["shop"]))
    rng = np.random.default_rng(0)
    features = FeatureSet(rng.normal(size=(dataset.n_items, 4)).astype(np.float32),
                          rng.normal(size=(dataset.n_items, 4)).astype(np.float32),
                          {"extractor": "base", "dataset": dataset.name, "dataset_hash": dataset.content_hash})
    folder = features.save(tmp_path / "fs")
    image = np.load(folder / "image_feat.npy")
    np.save(folder / "image_feat.npy", image[::-1])  # same rows, other order: shapes and hashes of the data set agree
    out = tmp_path / "mmrec"
    refused_without_trace(capsys, places, ["data", "export", "--dataset", places["shop"], "--format", "mmrec",
                                           "--features", folder, "--out", out],
                          "image_feat.npy", "damaged", "extract --extractor base --dataset shop --force")
    assert not out.exists()


def test_damaged_extraction_shard_is_named_with_its_fix(tmp_path):
    from extractors.shards import Ranks, merge_shards, run_shards, shard_path
    from protocol.errors import HarnessError

    run_shards(tmp_path, "text", 6, 3, lambda idx: (np.ones((len(idx), 2)), {}), Ranks())
    assert merge_shards(tmp_path, "text", 6, 3)[0].shape == (6, 2)
    shard = shard_path(tmp_path, "text", 3, 6)
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(HarnessError, match=rf"shard {re.escape(str(shard))} is damaged.*--force"):
        merge_shards(tmp_path, "text", 6, 3)
