"""Paired tests on per-user test metrics of runs, Holm correction, bootstrap CIs and the table asterisks."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
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


# --- statistics behind the paper's tables (asterisks, Holm correction, CIs, relative gain) ---

# Fewest paired users a test runs on. The t-test on per-user 0/1 hits leans on a normal mean
# difference, not credible for a handful of users; and the exact Wilcoxon p is at least 2 / 2**n
# (0.0039 at n = 9), above the Holm threshold 0.05 / m of any family of m >= 13 cells (Table 1
# tests 48), so below 10 users an asterisk would rest on the t-test alone. Such groups get NaN.
MIN_TEST_N = 10
ALPHA = 0.05


def paired_pvalues(ours, baseline) -> tuple[float, float]:
    """Two-sided paired p-values (t-test, Wilcoxon signed-rank) of two aligned per-user arrays.

    NaN for both when fewer than MIN_TEST_N pairs; 1.0 for both when every difference is zero
    (Wilcoxon has no statistic then). Wilcoxon drops zero differences (scipy's default "wilcox");
    scipy picks exact, permutation or normal null distributions by n and ties.
    """
    a, b = np.asarray(ours, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise HarnessError(f"paired test needs two aligned 1-d per-user arrays, got shapes {a.shape} "
                           f"and {b.shape}; take both runs' values on the same users.")
    if len(a) < MIN_TEST_N:
        return np.nan, np.nan
    if np.array_equal(a, b):
        return 1.0, 1.0
    return float(stats.ttest_rel(a, b).pvalue), float(stats.wilcoxon(a, b).pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values in the input order; NaN stays NaN and is not counted in m."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    # k-th smallest p times (m - k + 1), made monotone by a running maximum, capped at 1.
    out[order] = np.minimum(np.maximum.accumulate(p[order] * (m - np.arange(m))), 1.0)
    return out


def bootstrap_ci(values, level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (`scipy.stats.bootstrap`, seeded).

    Percentile rather than BCa: BCa's jackknife acceleration is undefined on 0/1 samples with
    few hits. A constant sample (one user included, which scipy refuses) gives (v, v); an empty
    one (NaN, NaN).
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return np.nan, np.nan
    if np.all(v == v[0]):
        return float(v[0]), float(v[0])
    # batch bounds memory: 100 resamples x 50k users is 40 MB of indices at a time.
    res = stats.bootstrap((v,), np.mean, n_resamples=n_resamples, confidence_level=level,
                          method="percentile", batch=100, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def relative_gain(ours, best) -> float:
    """The paper's "average relative gain over the best baseline": mean of (ours - best) / best, in %.

    Cells where best is 0 or either value is NaN are skipped; NaN when none is left.
    """
    o, b = np.asarray(ours, dtype=float), np.asarray(best, dtype=float)
    keep = ~np.isnan(o) & ~np.isnan(b) & (b != 0)
    return float(np.mean((o[keep] - b[keep]) / b[keep]) * 100) if keep.any() else np.nan


# The cells one asterisk decision compares: same table, model, data set, user group and metric.
UNIT = ("table", "profile", "model", "dataset", "group", "metric")


def mark_cells(cells: pd.DataFrame, ours: str | None, per_user: Callable[[str, str, str], object]) -> pd.DataFrame:
    """Fill ours, baseline, p_ttest, p_wilcoxon, p_holm and marked on a copy of `cells` (schema.md).

    `cells` needs extractor, value, n, run_key and the UNIT columns it has. Within each unit,
    every row whose extractor is `ours` (None: no row) is tested against the best other
    extractor by value (first in row order on ties): `per_user(run_key, group, metric)` gives a
    run's per-user values, as a pandas Series indexed by user (aligned here) or as arrays in one
    shared user order. p_holm corrects p_ttest across all tested cells of one table; marked needs ours above
    the baseline, n >= MIN_TEST_N and p_holm < ALPHA.
    """
    missing = {"extractor", "value", "n", "run_key", "group", "metric"} - set(cells.columns)
    if missing:
        raise HarnessError(f"cells lack the column(s) {sorted(missing)}; build them with the table builder.")
    out = cells.copy().reset_index(drop=True)
    out["ours"] = out["extractor"] == ours
    out["baseline"] = ""
    out["p_ttest"] = out["p_wilcoxon"] = np.nan
    base_value = pd.Series(np.nan, index=out.index)
    unit = [c for c in UNIT if c in out.columns]
    for _, rows in out.groupby(unit, sort=False, dropna=False):
        others = rows[~rows["ours"] & rows["value"].notna()]
        if others.empty:
            continue
        base = others.loc[others["value"].idxmax()]
        for i in rows.index[rows["ours"] & rows["value"].notna()]:  # a failed run has no users to test
            row = out.loc[i]
            a = per_user(row["run_key"], row["group"], row["metric"])
            b = per_user(base["run_key"], base["group"], base["metric"])
            if isinstance(a, pd.Series) and isinstance(b, pd.Series):
                if not a.index.sort_values().equals(b.index.sort_values()):
                    raise HarnessError(f"runs {row['run_key']} and {base['run_key']} cover different users; "
                                       "a paired test needs both runs on one data set.")
                a, b = a.sort_index(), b.sort_index()
            out.loc[i, "baseline"] = base["extractor"]
            base_value[i] = base["value"]
            out.loc[i, ["p_ttest", "p_wilcoxon"]] = paired_pvalues(a, b)
    by_table = out.groupby("table", sort=False).groups.values() if "table" in out.columns else [out.index]
    out["p_holm"] = np.nan
    for idx in by_table:
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p_ttest"])
    out["marked"] = (out["ours"] & (out["value"] > base_value) & (out["n"] >= MIN_TEST_N)
                     & (out["p_holm"] < ALPHA))
    return out

