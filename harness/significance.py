"""Paired t-tests on per-user test metrics of two runs (same data set, same candidates)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from harness.errors import HarnessError
from harness.store import ResultStore


@dataclass
class PairedTest:
    metric: str
    group: str
    n: int
    mean_a: float
    mean_b: float
    t: float
    p: float

    @property
    def significant(self) -> bool:
        return bool(self.p < 0.05)


def paired_test(store: ResultStore, run_a: str, run_b: str, metric: str = "ndcg@10",
                split: str = "test", protocol: str = "sampled", group: str = "overall") -> PairedTest:
    """Two-sided `scipy.stats.ttest_rel` on the per-user values of `metric`."""
    ident_a, ident_b = store.manifest(run_a)["identity"], store.manifest(run_b)["identity"]
    if ident_a["data_hash"] != ident_b["data_hash"]:
        raise HarnessError(f"runs {run_a} and {run_b} used different data sets (hashes differ); "
                           "a paired test needs the same users and candidates.")
    frames = []
    for key in (run_a, run_b):
        users = store.per_user(key)
        users = users[(users["split"] == split) & (users["protocol"] == protocol)]
        if group == "tail":
            users = users[users["tail"]]
        frames.append(users.set_index("user")[metric].sort_index())
    a, b = frames
    if not a.index.equals(b.index):
        raise HarnessError(f"runs {run_a} and {run_b} cover different users; prepare both on one data set.")
    if len(a) < 2:
        return PairedTest(metric, group, len(a), float(a.mean()) if len(a) else np.nan,
                          float(b.mean()) if len(b) else np.nan, np.nan, np.nan)
    if np.array_equal(a.to_numpy(), b.to_numpy()):
        return PairedTest(metric, group, len(a), float(a.mean()), float(b.mean()), 0.0, 1.0)
    result = stats.ttest_rel(a.to_numpy(), b.to_numpy())
    return PairedTest(metric, group, len(a), float(a.mean()), float(b.mean()),
                      float(result.statistic), float(result.pvalue))
