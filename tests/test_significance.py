"""Paired tests on aligned per-user files; table statistics (p-values, Holm, CIs, asterisks) match hand-derived values."""
import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from protocol.errors import HarnessError
from protocol.evaluate import Evaluation
from harness.significance import (MIN_TEST_N, bootstrap_ci, format_p, holm, mark_cells, paired_stats, paired_test,
                                  relative_gain, relative_gain_n)
from protocol.store import ResultStore


def _write(store, key, ranks, tail, data_hash="h"):
    ev = Evaluation.from_ranks(np.asarray(ranks), np.asarray(tail))
    store.write_run(key, {"run_key": key}, {("test", "sampled"): ev},
                    {"identity": {"data_hash": data_hash}})


def _t_two_sided(t, df):
    """Two-sided Student-t p-value through the regularised incomplete beta: I_{df/(df+t^2)}(df/2, 1/2)."""
    return special.betainc(df / 2, 0.5, df / (df + t * t))


def _hits_t(k, n):
    """t of n paired 0/1 differences of which k are +1 and the rest 0: mean k/n over sqrt(var / n)."""
    mean = k / n
    return mean / np.sqrt((k - n * mean**2) / (n - 1) / n)


def test_paired_test_on_aligned_users_matches_the_textbook_t(tmp_path):
    store = ResultStore(tmp_path)
    # 30 users; a ranks everyone 0 (a hit), b ranks users 0-19 at 0 and 20-29 at 50 (misses):
    # hit@10 differences: 10 of +1, 20 zeros.
    _write(store, "a", np.zeros(30, int), np.arange(30) < 12)
    _write(store, "b", np.where(np.arange(30) < 20, 0, 50), np.arange(30) < 12)
    got = paired_test(store, "a", "b", "hit@10")
    assert got.n == 30 and got.mean_a == 1.0 and got.mean_b == pytest.approx(2 / 3)
    assert got.t == pytest.approx(_hits_t(10, 30), rel=1e-12)
    assert got.p == pytest.approx(_t_two_sided(_hits_t(10, 30), 29), rel=1e-9)
    # tail: users 0-11, all hits on both sides: n 12, every difference zero
    tail = paired_test(store, "a", "b", "hit@10", group="tail")
    assert (tail.n, tail.p) == (12, 1.0)


def test_identical_runs_are_not_significant_and_other_data_is_refused(tmp_path):
    store = ResultStore(tmp_path)
    _write(store, "a", [1, 2, 30], [False] * 3)
    _write(store, "b", [1, 2, 30], [False] * 3)
    _write(store, "c", [1, 2, 30], [False] * 3, data_hash="other")
    same = paired_test(store, "a", "b")
    assert same.p == 1.0 and not same.significant
    with pytest.raises(HarnessError, match="different data sets"):
        paired_test(store, "a", "c")
    users = store.per_user("a")
    test = users[(users["split"] == "test") & (users["protocol"] == "sampled")]
    assert test["hit@10"].tolist() == [1.0, 1.0, 0.0]  # ranks 1, 2 hit; rank 30 misses


# --- table statistics: golden values derived by hand or from textbook formulas, not from the same scipy calls ---

def test_paired_stats_golden_ten_pairs():
    # differences 1..9 and -10: |d| ranks are 1..10, the negative one has rank 10, so W- = 10.
    baseline = np.arange(10.0)
    ours = baseline + np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, -10.0])
    t, p_t, p_w = paired_stats(ours, baseline)
    # Exact null: W = sum of a random subset of ranks {1..10}. Subsets with sum <= 10 = distinct
    # partitions of 0..10 = 1+1+1+2+2+3+4+5+6+8+10 = 43, so p = 2 * 43 / 2**10.
    assert p_w == pytest.approx(86 / 1024, rel=1e-12)
    # t = mean(d) / (sd(d) / sqrt(n)): mean 3.5, sum d^2 = 385, var = (385 - 10 * 3.5^2) / 9 = 29.1667,
    # so t = 3.5 / sqrt(2.91667) = 2.04939 (by hand).
    assert t == pytest.approx(2.04939, abs=1e-5)
    assert p_t == pytest.approx(_t_two_sided(2.0493901531919, 9), rel=1e-9)
    assert 0.05 < p_t < 0.1  # t(9) two-sided critical values: 1.833 (p = 0.10), 2.262 (p = 0.05)


def test_paired_stats_small_identical_and_misaligned():
    rng = np.random.default_rng(1)
    a = rng.random(MIN_TEST_N)
    assert np.isnan(paired_stats(a[:-1], a[:-1] + 1)).all()           # one pair short: no test
    assert paired_stats(a, a) == (0.0, 1.0, 1.0)                        # all differences zero
    with pytest.raises(HarnessError, match="aligned"):
        paired_stats(a, a[:-1])


def test_paired_stats_on_hits_with_zero_differences_and_ties():
    # 40 users: ours hits 30, baseline 10 (nested), so 20 differences of +1 and 20 zeros.
    ours, base = (np.arange(40) < 30) * 1.0, (np.arange(40) < 10) * 1.0
    t, p_t, p_w = paired_stats(ours, base)
    # t: mean 0.5, var = 40 * 0.25 / 39 -> t = 0.5 / sqrt(10 / 39 / 40) = 0.5 * sqrt(156).
    assert t == pytest.approx(0.5 * np.sqrt(156), rel=1e-12)
    assert p_t == pytest.approx(_t_two_sided(0.5 * np.sqrt(156), 39), rel=1e-9)
    # Wilcoxon drops the 20 zeros; 20 tied ranks of 10.5 -> W+ = 210, mean n(n+1)/4 = 105,
    # tie-corrected variance n(n+1)(2n+1)/24 - (20^3 - 20)/48 = 717.5 - 166.25, normal tail.
    z = (210 - 105) / np.sqrt(717.5 - 166.25)
    assert p_w == pytest.approx(special.erfc(z / np.sqrt(2)), rel=1e-9)


def test_p_values_at_paper_scale_never_read_zero():
    # 50,000 users, ours hits 60 %, the baseline 30 % (nested): 15,000 differences of +1, the rest 0.
    n = 50_000
    ours, base = (np.arange(n) < 30_000) * 1.0, (np.arange(n) < 15_000) * 1.0
    t, p_t, p_w = paired_stats(ours, base)
    assert t == pytest.approx(_hits_t(15_000, n), rel=1e-9) and t > 100  # far past any float p
    assert p_t < 1e-300 and p_w < 1e-300  # underflowed (0.0 or subnormal), yet not a p of 0:
    assert format_p(p_t) == format_p(0.0) == "< 1e-300"
    assert format_p(2e-300) == "2e-300" and format_p(0.0123456789) == "0.0123457" and format_p(np.nan) == ""


def test_holm_golden_family_nan_absent_and_cap():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02], rtol=1e-12)
    # a NaN (no test) is a member of the family counted as p = 1: m = 3, sorted 0.01 x3, 0.04 x2, 1
    np.testing.assert_allclose(holm([0.01, np.nan, 0.04]), [0.03, np.nan, 0.08], rtol=1e-12)
    # a family of 5 given 2 tests: the 3 absent count as p = 1 -> 0.01 x5, 0.04 x4
    np.testing.assert_allclose(holm([0.01, 0.04], m=5), [0.05, 0.16], rtol=1e-12)
    # ... or, as the most favourable case, as p = 0: they take ranks 1-3, then 0.01 x2, 0.04 x1
    np.testing.assert_allclose(holm([0.01, 0.04], m=5, absent=0.0), [0.02, 0.04], rtol=1e-12)
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    assert np.isnan(holm([np.nan])).all() and holm([]).size == 0
    with pytest.raises(HarnessError, match="family of 1"):
        holm([0.1, 0.2], m=1)


def test_a_partial_family_never_stars_what_the_full_family_denies():
    """The guarantee a partial build rests on (Holm is monotone in every p): with the absent tests as
    p = 1 a star is a star of the full family; with them as p = 0 a missing star is missing there too."""
    rng = np.random.default_rng(7)
    decided = 0
    for _ in range(300):
        m = rng.integers(2, 12)
        full = np.where(rng.random(m) < 0.2, np.nan, 10 ** rng.uniform(-5, 0, m))
        full_star = holm(full) < 0.05
        present = rng.random(m) < 0.5
        low, high = holm(full[present], m), holm(full[present], m, absent=0.0)
        assert not np.any((low < 0.05) & ~full_star[present])
        assert not np.any((high >= 0.05) & full_star[present])
        decided += int(np.sum((low < 0.05) | (high >= 0.05)))
    assert decided > 300  # most cells are decided without the rest of the family


def test_bootstrap_ci_is_the_percentile_interval_of_2000_seeded_resamples():
    # An independent percentile bootstrap: 2,000 resamples drawn as scipy draws them (the same
    # generator, batches of 100 rows of n indices), their means, numpy's 2.5 and 97.5 percentiles.
    # Continuous values (NDCG-like), so that every resample mean is distinct and one resample more or
    # less moves the percentiles.
    values = np.random.default_rng(5).random(300) ** 3
    rng = np.random.default_rng(3)
    means = np.concatenate([values[rng.integers(0, 300, (100, 300))].mean(axis=1) for _ in range(20)])
    assert bootstrap_ci(values, seed=3) == pytest.approx(tuple(np.percentile(means, [2.5, 97.5])), rel=1e-12)
    assert bootstrap_ci(values, seed=3) != pytest.approx(tuple(np.percentile(means[:1000], [2.5, 97.5])), rel=1e-12)
    # The normal approximation of a proportion's 95% CI on 10,000 users: half-width 1.96 sqrt(p(1-p)/n).
    large = np.random.default_rng(0).random(10_000) < 0.3
    lo, hi = bootstrap_ci(large)
    p = large.mean()
    assert (hi - lo) / 2 == pytest.approx(1.96 * np.sqrt(p * (1 - p) / large.size), rel=0.1)
    assert bootstrap_ci(np.full(7, 0.25)) == (0.25, 0.25) and bootstrap_ci([0.4]) == (0.4, 0.4)
    assert np.isnan(bootstrap_ci([])).all()


def test_relative_gain_is_a_mean_of_ratios_skipping_zero_and_nan_baselines():
    # (0.5 - 0.4) / 0.4 = 25 %, (0.3 - 0.3) / 0.3 = 0 %; best 0 and NaN cells skipped.
    assert relative_gain_n([0.5, 0.3, 0.2, 0.7, np.nan], [0.4, 0.3, 0.0, np.nan, 0.2]) == pytest.approx((12.5, 2))
    assert np.isnan(relative_gain([0.2], [0.0]))
    # mean of ratios: (0.2 - 0.1) / 0.1 = 100 %, (0.5 - 0.5) / 0.5 = 0 % -> 50 %; the ratio of means
    # (0.35 - 0.30) / 0.30 would give 16.67 %.
    assert relative_gain([0.2, 0.5], [0.1, 0.5]) == pytest.approx(50.0)


def _toy_cells():
    """vbpr and sasrec x base/clip/sda x overall (40 users) / tail (vbpr 12 users, sasrec 6), one data
    set and metric: a family of 4 comparisons. Hand-derived t-tests (k of n differences +1, rest 0):
    vbpr overall vs clip 20 of 40 (p 2.4e-7), vbpr tail vs base 5 of 12 (p 0.0172), sasrec overall
    vs base 5 of 40 (p 0.0234); sasrec tail has 6 < MIN_TEST_N users (no test, p = 1 in Holm)."""
    hits = {  # (model, extractor, group) -> per-user hits
        ("vbpr", "base", "overall"): np.arange(40) < 5, ("vbpr", "clip", "overall"): np.arange(40) < 10,
        ("vbpr", "sda", "overall"): np.arange(40) < 30,
        ("vbpr", "base", "tail"): np.arange(12) < 3, ("vbpr", "clip", "tail"): np.arange(12) < 2,
        ("vbpr", "sda", "tail"): np.arange(12) < 8,
        ("sasrec", "base", "overall"): np.arange(40) < 20, ("sasrec", "clip", "overall"): np.arange(40) % 2 == 0,
        ("sasrec", "sda", "overall"): np.arange(40) < 25,
        ("sasrec", "base", "tail"): np.arange(6) < 3, ("sasrec", "clip", "tail"): np.arange(6) < 1,
        ("sasrec", "sda", "tail"): np.arange(6) < 4,
    }
    rows, per_user = [], {}
    for (model, ext, group), h in hits.items():
        key = f"{model}-{ext}"
        users = [f"u{i:02d}" for i in range(len(h))]
        series = pd.Series(h * 1.0, index=users)
        # sasrec/base lists its users in reverse order: pairing by position would pair u00 with u39
        per_user[(key, group)] = series[::-1] if key == "sasrec-base" else series
        rows.append({"table": "table1", "model": model, "extractor": ext, "dataset": "beauty", "group": group,
                     "metric": "HR@10", "value": h.mean(), "n": len(h), "run_key": key, "data_hash": "h1"})
    return pd.DataFrame(rows), per_user


P_VBPR, P_TAIL, P_SASREC = (_t_two_sided(_hits_t(k, n), n - 1) for k, n in ((20, 40), (5, 12), (5, 40)))


def test_mark_cells_picks_the_best_baseline_and_holm_over_the_family_changes_a_decision():
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
    assert got.loc[("vbpr", "sda", "overall"), "t_stat"] == pytest.approx(0.5 * np.sqrt(156), rel=1e-12)
    assert got.loc[("vbpr", "sda", "overall"), "p_ttest"] == pytest.approx(P_VBPR, rel=1e-9)
    assert got.loc[("vbpr", "sda", "tail"), "p_ttest"] == pytest.approx(P_TAIL, rel=1e-9)      # 12 users: tested
    assert got.loc[("sasrec", "sda", "overall"), "p_ttest"] == pytest.approx(P_SASREC, rel=1e-9)  # by user id
    assert P_TAIL < 0.05 and P_SASREC < 0.05  # both significant uncorrected ...
    # ... Holm over the family of 4 (sasrec's 6-user tail untested, p = 1): sorted p x4, x3, x2, x1
    # = 9.5e-7, 0.0515, 0.0467 -> running max 0.0515: neither survives.
    assert (out["holm_m"].dropna() == 4).all()
    assert got.loc[("vbpr", "sda", "overall"), "p_holm"] == pytest.approx(4 * P_VBPR, rel=1e-9)
    assert got.loc[("vbpr", "sda", "tail"), "p_holm"] == pytest.approx(3 * P_TAIL, rel=1e-9)
    assert got.loc[("sasrec", "sda", "overall"), "p_holm"] == pytest.approx(3 * P_TAIL, rel=1e-9)
    assert 3 * P_TAIL == pytest.approx(0.0515, abs=1e-4)
    assert got.loc[("sasrec", "sda", "tail"), ["p_ttest", "p_wilcoxon", "p_holm"]].isna().all()
    assert got.loc[("sasrec", "sda", "tail"), "test_status"] == f"no test: n < {MIN_TEST_N}"
    assert out.loc[out["marked"], ["model", "group"]].values.tolist() == [["vbpr", "overall"]]


def test_mark_cells_pairs_by_user_id_and_checks_one_data_hash():
    cells, per_user = _toy_cells()
    shuffled = {k: v.sample(frac=1.0, random_state=1) for k, v in per_user.items()}
    a = mark_cells(cells, "sda", lambda key, group, metric: per_user[(key, group)])
    b = mark_cells(cells, "sda", lambda key, group, metric: shuffled[(key, group)])
    pd.testing.assert_frame_equal(a, b)
    with pytest.raises(HarnessError, match="Series indexed by user id"):
        mark_cells(cells, "sda", lambda key, group, metric: per_user[(key, group)].to_numpy())
    renamed = dict(per_user)
    renamed[("vbpr-clip", "overall")] = per_user[("vbpr-clip", "overall")].rename(lambda u: u + "x")
    with pytest.raises(HarnessError, match="different users"):
        mark_cells(cells, "sda", lambda key, group, metric: renamed[(key, group)])
    other = cells.copy()
    other.loc[(other["model"] == "vbpr") & (other["extractor"] == "base"), "data_hash"] = "h2"
    with pytest.raises(HarnessError, match="data hashes"):
        mark_cells(other, "sda", lambda key, group, metric: per_user[(key, group)])
    with pytest.raises(HarnessError, match="run_key"):
        mark_cells(cells.drop(columns="run_key"), "sda", lambda *a: None)


def test_a_failed_baseline_makes_its_comparison_incomplete():
    cells, per_user = _toy_cells()
    # vbpr's clip run failed: its cells have no value, n 0, no run key. The best finished baseline
    # (base, 5 of 40) would make sda look far better; the comparison is incomplete instead.
    failed = (cells["model"] == "vbpr") & (cells["extractor"] == "clip")
    cells.loc[failed, ["value", "n", "run_key", "data_hash"]] = [np.nan, 0, "", ""]
    asked = []
    out = mark_cells(cells, "sda", lambda key, group, metric: asked.append(key) or per_user[(key, group)])
    vbpr = out[(out["model"] == "vbpr") & out["ours"]]
    assert not vbpr["marked"].any() and vbpr[["p_ttest", "p_holm", "t_stat"]].isna().all(axis=None)
    assert (vbpr["test_status"] == "incomplete: baseline clip failed").all()
    assert (vbpr["baseline"] == "").all() and "" not in asked
    # the family is still 4: sasrec overall alone tested, 3 at p = 1 -> p x4
    sasrec = (out["model"] == "sasrec") & out["ours"] & (out["group"] == "overall")
    assert out.loc[sasrec, "p_holm"].item() == pytest.approx(4 * P_SASREC, rel=1e-9)
    none = mark_cells(cells, None, lambda *a: pytest.fail("no ours rows: nothing to fetch"))
    assert not none["ours"].any() and (none["baseline"] == "").all() and none["p_holm"].isna().all()


@pytest.mark.parametrize("failed_ours", [True, False])
def test_a_failed_ours_run_is_incomplete_and_an_empty_group_untested(failed_ours):
    cells, per_user = _toy_cells()
    rows = (cells["model"] == "vbpr") & (cells["group"] == "tail")
    if failed_ours:
        cells.loc[rows & (cells["extractor"] == "sda"), ["value", "n", "run_key"]] = [np.nan, 0, ""]
    else:  # no tail users at all: every run has its key, no values
        cells.loc[rows, ["value", "n"]] = [np.nan, 0]
    out = mark_cells(cells, "sda", lambda key, group, metric: per_user[(key, group)])
    status = out.loc[rows & out["ours"], "test_status"].item()
    assert status == ("incomplete: sda failed" if failed_ours else "no test: no users in the group")


def test_mark_cells_over_a_larger_family_and_pending_stars():
    """The plan's family holds comparisons outside these cells (a partial build: toys not built)."""
    cells, per_user = _toy_cells()
    keys = ["model", "extractor", "dataset", "group", "metric"]
    ours = cells.loc[cells["extractor"] == "sda", keys]
    family = pd.concat([ours, ours.assign(dataset="toys")], ignore_index=True)
    def mark(cells, users):
        return mark_cells(cells, "sda", lambda key, group, metric: users[(key, group)], family)

    got = mark(cells, per_user).set_index(["model", "extractor", "group"])
    # m = 8; the 4 toys comparisons count as p = 1. Sorted: P_VBPR x8, P_TAIL x7 = 0.120, P_SASREC x6.
    assert (got["holm_m"].dropna() == 8).all()
    assert got.loc[("vbpr", "sda", "overall"), "p_holm"] == pytest.approx(8 * P_VBPR, rel=1e-9)
    assert got.loc[("vbpr", "sda", "tail"), "p_holm"] == pytest.approx(7 * P_TAIL, rel=1e-9)
    assert got["marked"].sum() == 1 and got.loc[("vbpr", "sda", "overall"), "marked"]
    # Were the toys tests all p = 0, they would take ranks 1-4: P_VBPR x4, P_TAIL x3 = 0.0515,
    # P_SASREC x2 -> max 0.0515, still no star: decided, whatever the toys runs give.
    assert (got.loc[got["ours"], "test_status"] != "tested").sum() == 1  # sasrec's 6-user tail only
    # sasrec overall hits 6 of 40 more than base instead of 5: p6 = 0.0124. Sorted: P_VBPR, p6 x7 = 0.0865
    # (no star); best case p6 x3 = 0.0371 and P_TAIL max(0.0371, 2 x 0.0172): both could be starred by
    # the full build, so both are pending, not "no star".
    p6 = _t_two_sided(_hits_t(6, 40), 39)
    assert 7 * p6 == pytest.approx(0.0865, abs=1e-4) and 3 * p6 == pytest.approx(0.0371, abs=1e-4)
    stronger = dict(per_user)
    stronger[("sasrec-sda", "overall")] = pd.Series((np.arange(40) < 26) * 1.0, index=[f"u{i:02d}" for i in range(40)])
    row = (cells["model"] == "sasrec") & (cells["extractor"] == "sda") & (cells["group"] == "overall")
    cells.loc[row, "value"] = 26 / 40
    got = mark(cells, stronger).set_index(["model", "extractor", "group"])
    assert got.loc[("sasrec", "sda", "overall"), "p_holm"] == pytest.approx(7 * p6, rel=1e-9)
    assert not got.loc[("sasrec", "sda", "overall"), "marked"] and not got.loc[("vbpr", "sda", "tail"), "marked"]
    pending = "pending: the star depends on the 4 comparison(s) outside this partial build"
    assert got.loc[("sasrec", "sda", "overall"), "test_status"] == pending
    assert got.loc[("vbpr", "sda", "tail"), "test_status"] == pending
    with pytest.raises(HarnessError, match="not in the plan's Holm family"):
        mark_cells(cells, "sda", lambda key, group, metric: per_user[(key, group)], family.iloc[1:])
