"""The result store (DESIGN contract 3).

results/runs/<run_key>/ holds one finished run:
- metrics.csv   long rows: one per (split, protocol, group, metric, k) with the run's identity
- per_user.csv.gz  per-user rank, hit@k and ndcg@k for each split and protocol (t-tests read it)
- manifest.json resolved config, git commit, versions, machine, timings; written last, so a run
  directory with a manifest is finished and a grid skips its key.
results/metrics.csv is all runs' rows together, rebuilt after each run.
"""
from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path

import pandas as pd

from harness.config import results_dir
from harness.errors import HarnessError
from harness.fileio import atomic_path, read_json, write_json

IDENTITY = ("run_key", "model", "extractor", "dataset", "profile", "data_hash", "feature_key", "seed")


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
        """`evaluations` maps (split, protocol) -> harness.evaluate.Evaluation."""
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
        write_json(out / "manifest.json", manifest)
        self.rebuild_index()
        return out

    @contextlib.contextmanager
    def locked(self):
        """Hold the store's lock: parallel workers rewrite the shared CSVs one at a time."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def rebuild_index(self) -> Path:
        """results/metrics.csv from every finished run."""
        with self.locked():
            frames = [pd.read_csv(p.parent / "metrics.csv")
                      for p in sorted((self.root / "runs").glob("*/manifest.json"))]
            with atomic_path(self.root / "metrics.csv") as tmp:
                (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()).to_csv(tmp, index=False)
        return self.root / "metrics.csv"

    def metrics(self, run_key: str) -> pd.DataFrame:
        return pd.read_csv(self._need(run_key) / "metrics.csv")

    def per_user(self, run_key: str) -> pd.DataFrame:
        return pd.read_csv(self._need(run_key) / "per_user.csv.gz")

    def manifest(self, run_key: str) -> dict:
        return read_json(self._need(run_key) / "manifest.json")

    def _need(self, run_key: str) -> Path:
        if not self.is_finished(run_key):
            raise HarnessError(f"no finished run '{run_key}' under {self.root / 'runs'}; "
                               "run it first or check the key in results/metrics.csv.")
        return self.run_dir(run_key)
