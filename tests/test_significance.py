"""Paired t-tests read aligned per-user files; values agree with scipy on hand-made arrays."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.errors import HarnessError
from harness.evaluate import Evaluation
from harness.significance import paired_test
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
