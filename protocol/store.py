"""The result store (DESIGN contract 3).

results/runs/<run_key>/ holds one finished run:
- metrics.csv   long rows: one per (split, protocol, group, metric, k) with the run's identity
- per_user.csv.gz  per-user rank, hit@k and ndcg@k for each split and protocol (t-tests read it)
- manifest.json resolved config, git commit, versions, machine, timings; written last, so a run
  directory with a manifest is finished and a grid skips its key.
results/metrics.csv is all runs' rows together, rebuilt after each run.

The manifest records the sha256 of metrics.csv and per_user.csv.gz, and every read checks it, so
a damaged run is named (with its fix) instead of being read as numbers; the index leaves it out
with a warning rather than failing the run that is being stored.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import zlib
from pathlib import Path

import pandas as pd

from protocol.config import results_dir
from protocol.errors import HarnessError
from protocol.fileio import atomic_path, changed_files, file_sha256, read_json, unreadable, write_json

IDENTITY = ("run_key", "model", "extractor", "dataset", "profile", "data_hash", "feature_key", "seed")
METRIC_COLUMNS = (*IDENTITY, "split", "protocol", "group", "metric", "k", "value", "n")
PER_USER_COLUMNS = ("user", "split", "protocol", "tail")
HASHED = ("metrics.csv", "per_user.csv.gz")  # their hashes are in manifest.json, written after them


def _writable(path: Path) -> Path | None:
    """`path`'s nearest existing ancestor (itself included) when that is not a folder this process
    may write into (where creating `path` would fail); None when it is."""
    for folder in (path, *path.parents):
        if folder.exists():
            return None if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK) else folder
    return None


class ResultStore:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else results_dir()

    def run_dir(self, run_key: str) -> Path:
        return self.root / "runs" / run_key

    def is_finished(self, run_key: str) -> bool:
        return (self.run_dir(run_key) / "manifest.json").exists()

    def finished_keys(self) -> set[str]:
        return {p.parent.name for p in (self.root / "runs").glob("*/manifest.json")}

    def write_run(self, run_key: str, identity: dict, evaluations: dict, manifest: dict) -> Path:
        """`evaluations` maps (split, protocol) -> protocol.evaluate.Evaluation."""
        out = self.run_dir(run_key)
        rows, per_user = [], []
        for (split, protocol), ev in evaluations.items():
            summary = ev.summary()
            summary.insert(0, "protocol", protocol)
            summary.insert(0, "split", split)
            rows.append(summary)
            users = ev.per_user.copy()
            users.insert(1, "protocol", protocol)
            users.insert(1, "split", split)
            per_user.append(users)
        metrics = pd.concat(rows, ignore_index=True)
        for i, (key, value) in enumerate(identity.items()):
            metrics.insert(i, key, value if not isinstance(value, (dict, list)) else str(value))
        with atomic_path(out / "per_user.csv.gz") as tmp:
            pd.concat(per_user, ignore_index=True).to_csv(tmp, index=False, compression="gzip")
        with atomic_path(out / "metrics.csv") as tmp:
            metrics.to_csv(tmp, index=False)
        write_json(out / "manifest.json", manifest | {"files": {f: file_sha256(out / f) for f in HASHED}})
        self.rebuild_index()
        return out

    def check_writable(self) -> None:
        """Refuse a results folder this process cannot write, before any work is done (a run that
        trains for an hour must not fail at the end)."""
        for path in (self.root, self.root / "runs"):
            if (blocked := _writable(path)) is not None:
                raise HarnessError(f"cannot write results under {self.root}: {blocked} is not a folder this "
                                   "process may write; make it writable or set HARNESS_RESULTS to one that is.")

    def damaged(self, run_key: str, file: str, why: str) -> HarnessError:
        folder = self.run_dir(run_key)
        return HarnessError(f"run {run_key} is damaged: {folder / file} {why}; delete {folder} and run it "
                            "again (`run ... --force` replaces it).")

    @contextlib.contextmanager
    def locked(self):
        """Hold the store's lock: parallel workers rewrite the shared CSVs one at a time."""
        self.check_writable()
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def rebuild_index(self) -> Path:
        """results/metrics.csv from every finished run; a damaged one is left out and named."""
        index = self.root / "metrics.csv"
        with self.locked():
            frames = []
            for key in sorted(self.finished_keys()):
                try:
                    frames.append(self.metrics(key))
                except HarnessError as err:  # one damaged run must not cost the run being stored
                    print(f"warning: left out of {index}: {err}", file=sys.stderr)
            with atomic_path(index) as tmp:
                (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()).to_csv(tmp, index=False)
        return index

    def metrics(self, run_key: str) -> pd.DataFrame:
        return self._table(run_key, "metrics.csv", METRIC_COLUMNS)

    def per_user(self, run_key: str) -> pd.DataFrame:
        return self._table(run_key, "per_user.csv.gz", PER_USER_COLUMNS)

    def manifest(self, run_key: str) -> dict:
        path = self._need(run_key) / "manifest.json"
        try:
            manifest = read_json(path)
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
            raise self.damaged(run_key, "manifest.json", f"is not JSON ({err})") from None
        except OSError as err:
            raise unreadable(path, err) from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("identity"), dict):
            raise self.damaged(run_key, "manifest.json", "holds no run identity")
        return manifest

    def _table(self, run_key: str, name: str, columns: tuple[str, ...]) -> pd.DataFrame:
        """A run's CSV, checked against the hash its manifest records (runs stored before the
        hashes were recorded: readable with the expected columns)."""
        recorded = self.manifest(run_key).get("files") or {}
        if name in recorded and changed_files(self.run_dir(run_key), {name: recorded[name]}):
            raise self.damaged(run_key, name, "does not match its hash in manifest.json (changed or cut short)")
        try:
            table = pd.read_csv(self.run_dir(run_key) / name)
        except (OSError, EOFError, ValueError, zlib.error) as err:  # truncated gzip, garbage CSV, missing
            raise self.damaged(run_key, name, f"cannot be read ({type(err).__name__}: {err})") from None
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise self.damaged(run_key, name, f"has no column '{missing[0]}'")
        return table

    def _need(self, run_key: str) -> Path:
        if not self.is_finished(run_key):
            raise HarnessError(f"no finished run '{run_key}' under {self.root / 'runs'}; "
                               "run it first or check the key in results/metrics.csv.")
        return self.run_dir(run_key)
