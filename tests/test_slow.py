"""End-to-end runs on the real 5-core sets (`make test-slow`; minutes, left out of `make test`)."""
import pytest

from conftest import SHARED_DATA
from harness.runner import RunSpec, execute
from protocol.store import ResultStore

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (SHARED_DATA / "amazon-toys-5core").exists(), reason="needs ../shared/data")]


def test_id_sasrec_learns_beyond_popularity_on_toys_5core(tmp_path):
    """Within 10 epochs ID-SASRec leaves popularity behind on test NDCG@10 (sampled, overall),
    which it did not before positions started at N(0, 0.02) (docs/recommenders.md)."""
    store = ResultStore(tmp_path)
    train = {"train.progress": False, "train.full_ranking": False, "train.threads": 1}

    def test_ndcg(model: str, overrides: dict) -> float:
        out = execute(RunSpec.resolve(model, "toys-5core", "base", "paper", {**train, **overrides}), store=store)
        m = out["metrics"].query("split == 'test' and protocol == 'sampled' and group == 'overall' "
                                 "and metric == 'ndcg' and k == 10")
        return m["value"].item()

    pop = test_ndcg("pop", {})
    sasrec = test_ndcg("sasrec", {"max_len": 50, "train.max_epochs": 10, "train.patience": 10})
    assert sasrec > pop + 0.03, (sasrec, pop)
