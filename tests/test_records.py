"""Honest records: file permissions, stale temporaries, +dirty, resumed timings, skip and cache messages."""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from test_protocol import hand_spec

import recommenders.trainer as trainer_module
from conftest import REPO
from harness.cli import main as cli
from harness.runner import RunSpec, execute
from protocol.data.prepare import prepare
from protocol.fileio import atomic_dir, atomic_path, write_json
from protocol.provenance import git_commit
from protocol.store import ResultStore


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    return prepare(hand_spec(root / "source"), out_dir=root / "dataset")


@pytest.fixture
def umask():
    def set_mask(mask):
        os.umask(mask)

    before = os.umask(0o022)
    os.umask(before)
    yield set_mask
    os.umask(before)


@pytest.mark.parametrize("mask,file_mode,dir_mode", [(0o022, 0o644, 0o755), (0o007, 0o660, 0o770)])
def test_written_files_get_the_umasks_permissions(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    write_json(tmp_path / "a.json", {"x": 1})
    with atomic_dir(tmp_path / "set") as tmp:
        np.save(tmp / "x.npy", np.zeros(2))
        write_json(tmp / "meta.json", {})
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "set").stat().st_mode & 0o777 == dir_mode
    assert (tmp_path / "set" / "meta.json").stat().st_mode & 0o777 == file_mode


def test_the_next_write_removes_temporaries_that_interrupted_writes_left(tmp_path):
    target = tmp_path / "metrics.csv"
    an_hour_ago = time.time() - 3600
    stale_file = tmp_path / ".metrics.csv.k1l2m3.tmp"
    stale_dir = tmp_path / ".metrics.csv.n4o5p6.tmp"
    young = tmp_path / ".metrics.csv.q7r8s9.tmp"  # may be a writer that has just started
    held = tmp_path / ".metrics.csv.t0u1v2.tmp"  # an old one a live writer still holds
    other = tmp_path / ".other.csv.w3x4y5.tmp"  # another file's
    stale_file.write_text("half")
    stale_dir.mkdir()
    (stale_dir / "part").write_text("half")
    for path in (young, held, other):
        path.write_text("half")
    for path in (stale_file, stale_dir, held, other):
        os.utime(path, (an_hour_ago, an_hour_ago))
    with open(held) as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)
        with atomic_path(target) as tmp:
            tmp.write_text("whole")
    assert target.read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["metrics.csv", young.name, held.name, other.name])


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_dirty_means_the_code_differs_from_the_commit(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    shutil.copy(REPO / ".gitignore", repo / ".gitignore")
    (repo / "code.py").write_text("x = 1\n")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    head = _git(repo, "rev-parse", "HEAD").strip()
    assert git_commit(repo) == head
    (repo / "notes.txt").write_text("untracked\n")  # untracked files are not code of the commit
    (repo / "results").mkdir()
    (repo / "results" / "metrics.csv").write_text("a\n")
    assert git_commit(repo) == head
    (repo / "code.py").write_text("x = 2\n")
    assert git_commit(repo) == head + "+dirty"


def test_a_runs_outputs_leave_a_clean_checkout_clean(tmp_path, hand, monkeypatch):
    """The project's .gitignore covers what runs write: a manifest on a clean checkout says no +dirty."""
    import harness.runner

    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    shutil.copy(REPO / ".gitignore", repo / ".gitignore")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(harness.runner, "git_commit", lambda: git_commit(repo))
    monkeypatch.setenv("HARNESS_ARTIFACTS", str(repo / "artifacts"))
    spec = RunSpec.resolve("pop", "protocol", "base", "mini", {"train.progress": False})
    out = execute(spec, store=ResultStore(repo / "results"), dataset=hand)
    assert (repo / "results" / "metrics.csv").exists() and (repo / "results" / ".lock").exists()
    assert out["manifest"]["git_commit"] == _git(repo, "rev-parse", "HEAD").strip()
    assert _git(repo, "status", "--porcelain", "--untracked-files=all") == ""


class SlowClock:
    """time for the trainer: perf_counter plus an offset a test can raise."""

    offset = 0.0

    @classmethod
    def perf_counter(cls):
        return time.perf_counter() + cls.offset


def test_a_resumed_run_counts_every_process_in_its_wall_seconds(hand, tmp_path, monkeypatch):
    from recommenders.sasrec import SASRec

    class Killed(Exception):
        pass

    def first_epoch_takes_1000_seconds_then_killed(self, epoch):
        if epoch == 1:
            SlowClock.offset += 1000.0
        if epoch == 2:
            raise Killed

    store = ResultStore(tmp_path)
    spec = RunSpec.resolve("sasrec", "protocol", "base", "mini",
                           {"hidden": 8, "max_len": 5, "train.max_epochs": 3, "train.patience": 5,
                            "train.full_ranking": False, "train.progress": False})
    monkeypatch.setattr(trainer_module, "time", SlowClock)
    monkeypatch.setattr(SASRec, "on_epoch_start", first_epoch_takes_1000_seconds_then_killed)
    with pytest.raises(Killed):
        execute(spec, store=store, dataset=hand)
    monkeypatch.undo()
    out = execute(spec, store=store, dataset=hand)
    ident = out["manifest"]["identity"]
    assert ident["resumes"] == 1 and ident["epochs"] == 3
    # the killed process's 1000 s (up to its epoch-1 checkpoint) plus this one's few seconds
    assert 1000 < ident["wall_seconds"] < 1100
    assert 1000 < out["manifest"]["timings"]["train_seconds"] < 1100
    straight = execute(RunSpec.resolve("sasrec", "protocol", "base", "mini", {**spec.params, **{
        f"train.{k}": v for k, v in spec.train.items()}, "train.seed": 1}), store=store, dataset=hand)
    assert straight["manifest"]["identity"]["resumes"] == 0
    assert straight["manifest"]["identity"]["wall_seconds"] < 100


def test_run_says_when_a_finished_run_is_skipped(hand, capsys):
    args = ["run", "--model", "pop", "--dataset", str(hand.path), "train.progress=false"]
    assert cli(args) == 0
    assert "already finished" not in capsys.readouterr().out
    assert cli(args) == 0
    out = capsys.readouterr().out
    key = re.search(r"\] run (\w+)", out).group(1)
    assert f"already finished: {key}; --force to run again" in out
    assert cli(args + ["--force"]) == 0
    assert "already finished" not in capsys.readouterr().out


def test_extract_reuses_a_cached_set_until_forced_and_names_a_damaged_one(hand, capsys):
    args = ["extract", "--extractor", "clip", "--dataset", str(hand.path), "--quiet"]
    assert cli(args) == 0
    first = capsys.readouterr().out
    folder = Path(first.split("feature set: ")[-1].strip())
    assert "extracted" in first and "found in the cache" not in first
    assert cli(args) == 0
    assert "found in the cache (--force to extract again)" in capsys.readouterr().out
    stamp = (folder / "image_feat.npy").stat().st_mtime_ns
    assert cli(args + ["--force"]) == 0
    assert "extracted" in capsys.readouterr().out
    assert (folder / "image_feat.npy").stat().st_mtime_ns != stamp
    # A truncated file: one line naming the folder and the fix, exit code 2.
    data = (folder / "image_feat.npy").read_bytes()
    (folder / "image_feat.npy").write_bytes(data[: len(data) // 2])
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert f"the feature set {folder} is damaged" in err and "--force" in err
    assert cli(args + ["--force"]) == 0
    assert cli(args) == 0 and "found in the cache" in capsys.readouterr().out
