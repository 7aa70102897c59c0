"""Paired tests on per-user test metrics of runs, Holm correction, bootstrap CIs and the table asterisks."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from protocol.errors import HarnessError
from protocol.store import ResultStore


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
# tests 48), so below 10 users an asterisk would rest on the t-test alone. Such groups get NaN
# (and count as p = 1 in the Holm family).
MIN_TEST_N = 10
ALPHA = 0.05


def paired_stats(ours, baseline) -> tuple[float, float, float]:
    """Two-sided paired tests of two aligned per-user arrays: (t statistic, t-test p, Wilcoxon p).

    NaN for all three when fewer than MIN_TEST_N pairs; t = 0 and both p = 1.0 when every
    difference is zero (Wilcoxon has no statistic then). Wilcoxon drops zero differences (scipy's
    default "wilcox"); scipy picks exact, permutation or normal null distributions by n and ties.
    The t statistic is kept because at ~50k users p underflows to 0.0 while t still says how far.
    """
    a, b = np.asarray(ours, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise HarnessError(f"paired test needs two aligned 1-d per-user arrays, got shapes {a.shape} "
                           f"and {b.shape}; take both runs' values on the same users.")
    if len(a) < MIN_TEST_N:
        return np.nan, np.nan, np.nan
    if np.array_equal(a, b):
        return 0.0, 1.0, 1.0
    t = stats.ttest_rel(a, b)
    return float(t.statistic), float(t.pvalue), float(stats.wilcoxon(a, b).pvalue)


def holm(pvalues, m: int | None = None, absent: float = 1.0) -> np.ndarray:
    """Holm step-down adjusted p-values in the input order, over a family of `m` tests.

    The family is fixed by the caller (the plan), not by the tests that ran: a NaN entry (no test:
    a failed run, too few users) counts as p = 1 and stays NaN in the output, and the m - len(pvalues)
    comparisons not given here count as p = `absent` (1: conservative; 0: the most favourable case,
    which bounds what a build with them could give).
    """
    p = np.asarray(pvalues, dtype=float)
    m = len(p) if m is None else m
    if m < len(p):
        raise HarnessError(f"Holm family of {m} cannot hold {len(p)} tests; count the plan's comparisons.")
    family = np.concatenate([np.where(np.isnan(p), 1.0, p), np.full(m - len(p), absent)])
    order = np.argsort(family, kind="stable")
    # k-th smallest p times (m - k + 1), made monotone by a running maximum, capped at 1.
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(np.maximum.accumulate(family[order] * (m - np.arange(m))), 1.0)
    return np.where(np.isnan(p), np.nan, adjusted[:len(p)])


TINY_P = 1e-300


def format_p(p: float) -> str:
    """A p-value as text: "< 1e-300" below 1e-300 (an underflowed 0.0 included: p is never 0),
    "" for no test, else 6 significant digits."""
    if pd.isna(p):
        return ""
    return f"< {TINY_P:g}" if p < TINY_P else f"{p:.6g}"


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
    """The paper's "average relative gain over the best baseline": mean of (ours - best) / best, in %."""
    return relative_gain_n(ours, best)[0]


def relative_gain_n(ours, best) -> tuple[float, int]:
    """relative_gain and the number of cells it covers: cells where best is 0 or either value is NaN
    are skipped; NaN when none is left. A mean of per-cell ratios, as the paper's, not a ratio of means."""
    o, b = np.asarray(ours, dtype=float), np.asarray(best, dtype=float)
    keep = ~np.isnan(o) & ~np.isnan(b) & (b != 0)
    return (float(np.mean((o[keep] - b[keep]) / b[keep]) * 100) if keep.any() else np.nan), int(keep.sum())


# The cells one asterisk decision compares: same table, model, data set, user group and metric.
UNIT = ("table", "profile", "model", "dataset", "group", "metric")
# What identifies a cell within one table (and a comparison of the Holm family).
CELL = ("model", "extractor", "variant", "dataset", "group", "metric")
# test_status of an ours cell; empty on the other cells.
TESTED = "tested"
INCOMPLETE = "incomplete"  # a run of the comparison failed: no test, no star, no gain
PENDING = "pending"  # a partial build: the star depends on comparisons outside it
NO_TEST = "no test"  # too few users (or none) in the group


def comparisons(cells: pd.DataFrame, ours: str | None) -> pd.DataFrame:
    """The Holm family of a set of cells (for a table: the plan's every cell, built or not): each
    `ours` cell whose unit holds another row to compare it with; the CELL columns that `cells` has."""
    unit = [c for c in UNIT if c in cells.columns]
    is_ours = cells["extractor"] == ours
    has_other = (~is_ours).groupby([cells[c] for c in unit], sort=False).transform("any")
    return cells.loc[is_ours & has_other, [c for c in CELL if c in cells.columns]].reset_index(drop=True)


def mark_cells(cells: pd.DataFrame, ours: str | None, per_user: Callable[[str, str, str], pd.Series],
               family: pd.DataFrame | None = None) -> pd.DataFrame:
    """Fill ours, baseline, t_stat, p_ttest, p_wilcoxon, p_holm, holm_m, marked and test_status on a
    copy of `cells` (docs/tables.md).

    `cells` needs extractor, value, n, run_key, data_hash and the UNIT columns it has. Within each
    unit, every row whose extractor is `ours` (None: no row) is tested against the best other row by
    value (first in row order on ties); when any other row of the unit has no value (its run
    failed) the unit is incomplete: no test, no star. `per_user(run_key, group, metric)` gives a
    run's per-user values as a Series indexed by user id; the two sides are aligned by user id and
    must come from one data set (one data hash). p_holm corrects p_ttest over `family` (default: the
    comparisons of `cells`; a table passes its plan's), where a comparison without a test counts
    as p = 1. marked needs ours above the baseline, a test (n >= MIN_TEST_N) and p_holm < ALPHA.
    When `family` holds comparisons that `cells` lacks (a partial build), an unmarked cell that
    would be marked were those tests to come out p = 0 is "pending": the full build decides it.
    """
    missing = {"extractor", "value", "n", "run_key", "data_hash", "group", "metric"} - set(cells.columns)
    if missing:
        raise HarnessError(f"cells lack the column(s) {sorted(missing)}; build them with the table builder.")
    out = cells.copy().reset_index(drop=True)
    out["ours"] = out["extractor"] == ours
    out["baseline"], out["test_status"] = "", ""
    out[["t_stat", "p_ttest", "p_wilcoxon", "p_holm", "holm_m"]] = np.nan
    base_value = pd.Series(np.nan, index=out.index)
    unit = [c for c in UNIT if c in out.columns]
    for _, rows in out.groupby(unit, sort=False, dropna=False):
        others = rows[~rows["ours"]]
        if others.empty:
            continue
        _one_data_set(rows)
        for i in rows.index[rows["ours"]]:
            result = _test(out.loc[i], others, per_user)
            base_value[i] = result.pop("base_value", np.nan)
            for column, value in result.items():
                out.at[i, column] = value
    family = comparisons(out, ours) if family is None else family
    member = _correct(out, family)
    better = out["ours"] & (out["value"] > base_value) & out["p_ttest"].notna()
    out["marked"] = better & (out["p_holm"] < ALPHA)
    outside = len(family) - int(member.sum())
    if outside:  # a partial build: would the star come were the absent tests all p = 0?
        best_case = pd.Series(np.nan, index=out.index)
        best_case[member] = holm(out.loc[member, "p_ttest"], len(family), absent=0.0)
        pending = better & ~out["marked"] & (best_case < ALPHA)
        out.loc[pending, "test_status"] = (f"{PENDING}: the star depends on the {outside} comparison(s) "
                                           "outside this partial build")
    return out


def _one_data_set(rows: pd.DataFrame) -> None:
    """The rows of one comparison unit must come from one data set: checked by its content hash."""
    hashes = set(rows.loc[rows["value"].notna(), "data_hash"])
    if len(hashes) > 1 or "" in hashes:
        keys = ", ".join(rows.loc[rows["value"].notna(), "run_key"])
        raise HarnessError(f"runs {keys} of one comparison carry data hashes {sorted(hashes)}; a paired test "
                           "needs every run on one prepared data set (rebuild the table after `data prepare`).")


def _test(row: pd.Series, others: pd.DataFrame, per_user) -> dict:
    """One ours cell against the best of `others`: the columns to fill."""
    if pd.isna(row["value"]):
        return {"test_status": f"{INCOMPLETE}: {row['extractor']} failed" if not row["run_key"]
                else f"{NO_TEST}: no users in the group"}
    failed = others[others["value"].isna()]
    if not failed.empty:  # the best finished baseline may be a weaker one: never lower the bar
        return {"test_status": f"{INCOMPLETE}: baseline {', '.join(failed['extractor'])} failed"}
    base = others.loc[others["value"].idxmax()]
    done = {"baseline": base["extractor"], "base_value": base["value"]}
    if row["n"] < MIN_TEST_N:
        return done | {"test_status": f"{NO_TEST}: n < {MIN_TEST_N}"}
    a, b = _aligned(per_user(row["run_key"], row["group"], row["metric"]),
                    per_user(base["run_key"], base["group"], base["metric"]), row["run_key"], base["run_key"])
    t, p_t, p_w = paired_stats(a, b)
    return done | {"t_stat": t, "p_ttest": p_t, "p_wilcoxon": p_w, "test_status": TESTED}


def _aligned(a, b, key_a: str, key_b: str) -> tuple[np.ndarray, np.ndarray]:
    """Two runs' per-user values paired by user id (never by position)."""
    if not (isinstance(a, pd.Series) and isinstance(b, pd.Series)):
        raise HarnessError("per-user values must be pandas Series indexed by user id, so that the paired "
                           "test pairs users, not positions; return them as the table builder's PerUser does.")
    if not (a.index.is_unique and b.index.is_unique) or not a.index.sort_values().equals(b.index.sort_values()):
        raise HarnessError(f"runs {key_a} and {key_b} cover different users; a paired test needs both runs "
                           "on one data set.")
    return a.to_numpy(dtype=float), b.reindex(a.index).to_numpy(dtype=float)


def _correct(out: pd.DataFrame, family: pd.DataFrame) -> pd.Series:
    """p_holm and holm_m over the family (in place); every tested cell must belong to it. Returns
    which cells are members."""
    keys = [c for c in CELL if c in family.columns and c in out.columns]
    known = pd.MultiIndex.from_frame(family[keys].astype(str))
    if known.has_duplicates:
        raise HarnessError(f"the Holm family names a comparison twice; tell them apart by {list(CELL)}.")
    member = out["ours"] & pd.MultiIndex.from_frame(out[keys].astype(str)).isin(known)
    stray = out["p_ttest"].notna() & ~member
    if stray.any():
        raise HarnessError(f"{int(stray.sum())} tested cell(s) are not in the plan's Holm family (e.g. "
                           f"{out.loc[stray, keys].iloc[0].tolist()}); build the family from the same plan.")
    out.loc[member, "p_holm"] = holm(out.loc[member, "p_ttest"], len(family))
    out.loc[member, "holm_m"] = len(family)
    return member
