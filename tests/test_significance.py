"""Paired tests on aligned per-user files; table statistics (p-values, Holm, CIs, asterisks) match hand-derived values."""
import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from harness.errors import HarnessError
from harness.evaluate import Evaluation
from harness.significance import (MIN_TEST_N, bootstrap_ci, holm, mark_cells, paired_pvalues, paired_test,
                                  relative_gain)
from harness.store import ResultStore


def _write(store, key, ranks, tail, data_hash="h"):
    ev = Evaluation.from_ranks(np.asarray(ranks), np.asarray(tail))
    store.write_run(key, {"run_key": key}, {("test", "sampled"): ev},
                    {"identity": {"data_hash": data_hash}})


def test_paired_test_matches_scipy_on_aligned_users(tmp_path):
    store = ResultStore(tmp_path)
    rng = np.random.default_rng(0)
    ranks_a, ranks_b = rng.integers(0, 30, 200), rng.integers(0, 15, 200)
    tail = rng.random(200) < 0.3
    _write(store, "a", ranks_a, tail)
    _write(store, "b", ranks_b, tail)
    ndcg = lambda r: np.where(r < 10, 1 / np.log2(r + 2.0), 0.0)  # noqa: E731
    expected = stats.ttest_rel(ndcg(ranks_a), ndcg(ranks_b))
    got = paired_test(store, "a", "b", "ndcg@10")
    assert got.n == 200 and got.p == pytest.approx(expected.pvalue) and got.t == pytest.approx(expected.statistic)
    tail_test = paired_test(store, "a", "b", "hit@10", group="tail")
    assert tail_test.n == int(tail.sum())
    assert tail_test.p == pytest.approx(stats.ttest_rel((ranks_a < 10)[tail] * 1.0, (ranks_b < 10)[tail] * 1.0).pvalue)


def test_identical_runs_are_not_significant_and_other_data_is_refused(tmp_path):
    store = ResultStore(tmp_path)
    _write(store, "a", [1, 2, 3], [False] * 3)
    _write(store, "b", [1, 2, 3], [False] * 3)
    _write(store, "c", [1, 2, 3], [False] * 3, data_hash="other")
    same = paired_test(store, "a", "b")
    assert same.p == 1.0 and not same.significant
    with pytest.raises(HarnessError, match="different data sets"):
        paired_test(store, "a", "c")
    assert isinstance(store.per_user("a"), pd.DataFrame)


# --- table statistics: golden values derived by hand or from textbook formulas, not from the same scipy calls ---

def _t_two_sided(t, df):
    """Two-sided Student-t p-value through the regularised incomplete beta: I_{df/(df+t^2)}(df/2, 1/2)."""
    return special.betainc(df / 2, 0.5, df / (df + t * t))


def test_paired_pvalues_golden_ten_pairs():
    # differences 1..9 and -10: |d| ranks are 1..10, the negative one has rank 10, so W- = 10.
    baseline = np.arange(10.0)
    ours = baseline + np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, -10.0])
    # Exact null: W = sum of a random subset of ranks {1..10}. Subsets with sum <= 10 = distinct
    # partitions of 0..10 = 1+1+1+2+2+3+4+5+6+8+10 = 43, so p = 2 * 43 / 2**10.
    p_t, p_w = paired_pvalues(ours, baseline)
    assert p_w == pytest.approx(86 / 1024, rel=1e-12)
    # t = mean(d) / (sd(d) / sqrt(n)): mean 3.5, sum d^2 = 385, var = (385 - 10 * 3.5^2) / 9.
    t = 3.5 / np.sqrt((385 - 122.5) / 9 / 10)
    assert t == pytest.approx(2.04939, abs=1e-5)
    assert p_t == pytest.approx(_t_two_sided(t, 9), rel=1e-9)
    assert 0.05 < p_t < 0.1  # t(9) two-sided critical values: 1.833 (p = 0.10), 2.262 (p = 0.05)


def test_paired_pvalues_small_identical_and_misaligned():
    rng = np.random.default_rng(1)
    a = rng.random(MIN_TEST_N)
    assert np.isnan(paired_pvalues(a[:-1], a[:-1] + 1)).all()           # one pair short: no test
    assert paired_pvalues(a, a) == (1.0, 1.0)                             # all differences zero
    hits = (rng.random(MIN_TEST_N) < 0.5).astype(float)
    assert paired_pvalues(hits, hits) == (1.0, 1.0)
    with pytest.raises(HarnessError, match="aligned"):
        paired_pvalues(a, a[:-1])


def test_paired_pvalues_on_hits_with_zero_differences_and_ties():
    # 40 users: ours hits 30, baseline 10 (nested), so 20 differences of +1 and 20 zeros.
    ours, base = (np.arange(40) < 30) * 1.0, (np.arange(40) < 10) * 1.0
    p_t, p_w = paired_pvalues(ours, base)
    # t: mean 0.5, var = 40 * 0.25 / 39 -> t = 0.5 / sqrt(10 / 39 / 40) = 0.5 * sqrt(156).
    assert p_t == pytest.approx(_t_two_sided(0.5 * np.sqrt(156), 39), rel=1e-9)
    # Wilcoxon drops the 20 zeros; 20 tied ranks of 10.5 -> W+ = 210, mean n(n+1)/4 = 105,
    # tie-corrected variance n(n+1)(2n+1)/24 - (20^3 - 20)/48 = 717.5 - 166.25, normal tail.
    z = (210 - 105) / np.sqrt(717.5 - 166.25)
    assert p_w == pytest.approx(special.erfc(z / np.sqrt(2)), rel=1e-9)


def test_holm_golden_nan_and_cap():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    np.testing.assert_allclose(holm([0.01, np.nan, 0.04]), [0.02, np.nan, 0.04], rtol=1e-12)  # m = 2
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    assert np.isnan(holm([np.nan])).all()
    assert holm([]).size == 0


def test_bootstrap_ci_seeded_contains_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.random(100) < 0.3, rng.random(10_000) < 0.3
    lo_s, hi_s = bootstrap_ci(small, seed=3)
    assert (lo_s, hi_s) == bootstrap_ci(small, seed=3)
    assert lo_s < small.mean() < hi_s
    lo_l, hi_l = bootstrap_ci(large, seed=3)
    assert lo_l < large.mean() < hi_l
    # The normal approximation of a proportion's 95% CI: half-width 1.96 * sqrt(p(1-p)/n).
    p = large.mean()
    assert (hi_l - lo_l) / 2 == pytest.approx(1.96 * np.sqrt(p * (1 - p) / large.size), rel=0.1)
    assert (hi_l - lo_l) < (hi_s - lo_s) / 5  # 100x the users: about 1/10 the width
    assert bootstrap_ci(np.full(7, 0.25)) == (0.25, 0.25) and bootstrap_ci([0.4]) == (0.4, 0.4)
    assert np.isnan(bootstrap_ci([])).all()


def test_relative_gain_skips_zero_and_nan_baselines():
    # (0.5 - 0.4) / 0.4 = 25 %, (0.3 - 0.3) / 0.3 = 0 %; best 0 and NaN cells skipped.
    assert relative_gain([0.5, 0.3, 0.2, 0.7, np.nan], [0.4, 0.3, 0.0, np.nan, 0.2]) == pytest.approx(12.5)
    assert np.isnan(relative_gain([0.2], [0.0]))


def _toy_cells():
    """vbpr and sasrec x base/clip/sda x overall (40 users) / tail (6 users), one data set and metric."""
    hits = {  # (model, extractor, group) -> per-user hits
        ("vbpr", "base", "overall"): np.arange(40) < 5, ("vbpr", "clip", "overall"): np.arange(40) < 10,
        ("vbpr", "sda", "overall"): np.arange(40) < 30,
        ("vbpr", "base", "tail"): np.arange(6) < 2, ("vbpr", "clip", "tail"): np.arange(6) < 1,
        ("vbpr", "sda", "tail"): np.arange(6) < 6,
        ("sasrec", "base", "overall"): np.arange(40) < 20, ("sasrec", "clip", "overall"): np.arange(40) % 2 == 0,
        ("sasrec", "sda", "overall"): np.arange(40) < 16,
        ("sasrec", "base", "tail"): np.arange(6) < 3, ("sasrec", "clip", "tail"): np.arange(6) < 1,
        ("sasrec", "sda", "tail"): np.arange(6) < 4,
    }
    rows, per_user = [], {}
    for (model, ext, group), h in hits.items():
        key = f"{model}-{ext}"
        # users as a Series index; sasrec/base lists its users in reverse order to prove alignment.
        users = [f"u{i:02d}" for i in range(len(h))]
        series = pd.Series(h * 1.0, index=users)
        per_user[(key, group)] = series[::-1] if key == "sasrec-base" else series
        rows.append({"table": "table1", "model": model, "extractor": ext, "dataset": "beauty", "group": group,
                     "metric": "HR@10", "value": h.mean(), "n": len(h), "run_key": key})
    return pd.DataFrame(rows), per_user


def test_mark_cells_picks_best_baseline_and_corrects_across_the_table():
    cells, per_user = _toy_cells()
    calls = []
    out = mark_cells(cells, "sda", lambda key, group, metric: calls.append(metric) or per_user[(key, group)])
    got = out.set_index(["model", "extractor", "group"])
    # baselines: best non-ours extractor by value in each (model, group).
    assert got.loc[("vbpr", "sda", "overall"), "baseline"] == "clip"
    assert got.loc[("vbpr", "sda", "tail"), "baseline"] == "base"
    assert got.loc[("sasrec", "sda", "overall"), "baseline"] == "base"   # 0.5 vs clip 0.5: first in row order
    assert (out.loc[~out["ours"], "baseline"] == "").all() and out["ours"].sum() == 4
    assert set(calls) == {"HR@10"}
    # vbpr overall: 20 differences of +1, 20 zeros -> t = 0.5 * sqrt(156), df 39.
    p_vbpr = _t_two_sided(0.5 * np.sqrt(156), 39)
    # sasrec overall vs base (first 20 users hit): sda hits users 0-15 -> 4 differences of -1, 36 zeros:
    # mean -0.1, var = (4 - 40 * 0.01) / 39 -> t = -0.1 / sqrt(3.6 / 39 / 40).
    p_sasrec = _t_two_sided(0.1 / np.sqrt(3.6 / 39 / 40), 39)
    assert got.loc[("vbpr", "sda", "overall"), "p_ttest"] == pytest.approx(p_vbpr, rel=1e-9)
    assert got.loc[("sasrec", "sda", "overall"), "p_ttest"] == pytest.approx(p_sasrec, rel=1e-9)
    # Holm over the two tested cells (tails have 6 < MIN_TEST_N users: NaN, not counted).
    assert got.loc[("vbpr", "sda", "overall"), "p_holm"] == pytest.approx(2 * p_vbpr, rel=1e-9)
    assert got.loc[("sasrec", "sda", "overall"), "p_holm"] == pytest.approx(max(2 * p_vbpr, p_sasrec), rel=1e-9)
    assert got.loc[("vbpr", "sda", "tail"), ["p_ttest", "p_wilcoxon", "p_holm"]].isna().all()
    # Only vbpr overall is marked: the tail gain (1.0 vs 0.33) has too few users, sasrec is worse.
    assert out.loc[out["marked"], ["model", "group"]].values.tolist() == [["vbpr", "overall"]]
    assert out["p_ttest"].notna().sum() == 2 and out.loc[~out["ours"], "p_ttest"].isna().all()


def test_mark_cells_refuses_runs_on_different_users():
    cells, per_user = _toy_cells()
    per_user[("vbpr-clip", "overall")] = per_user[("vbpr-clip", "overall")].rename(lambda u: u + "x")
    with pytest.raises(HarnessError, match="different users"):
        mark_cells(cells, "sda", lambda key, group, metric: per_user[(key, group)])
    with pytest.raises(HarnessError, match="run_key"):
        mark_cells(cells.drop(columns="run_key"), "sda", lambda *a: None)


def test_mark_cells_skips_failed_runs_and_plans_without_ours():
    cells, per_user = _toy_cells()
    failed = (cells["model"] == "vbpr") & (cells["extractor"] == "sda") & (cells["group"] == "overall")
    cells.loc[failed, ["value", "n", "run_key"]] = [np.nan, 0, ""]
    asked = []
    out = mark_cells(cells, "sda", lambda key, group, metric: asked.append(key) or per_user[(key, group)])
    assert "" not in asked and not out["marked"].any()
    assert out.loc[failed, ["p_ttest", "p_holm"]].isna().all(axis=None)
    # sasrec overall is now the only tested cell: Holm with m = 1 leaves its p as it is.
    sasrec = (out["model"] == "sasrec") & out["ours"] & (out["group"] == "overall")
    assert out.loc[sasrec, "p_holm"].item() == out.loc[sasrec, "p_ttest"].item()
    none = mark_cells(cells, None, lambda *a: pytest.fail("no ours rows: nothing to fetch"))
    assert not none["ours"].any() and (none["baseline"] == "").all() and none["p_holm"].isna().all()
