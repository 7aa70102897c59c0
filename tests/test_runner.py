"""The minimal runner end to end on the bundled mini Beauty: pop and ID-SASRec."""
import numpy as np
import pytest

from harness.runner import RunSpec, execute, headline
from protocol.store import ResultStore

RANDOM_HR10 = 10 / 101


@pytest.fixture(scope="module")
def pop_run(mini_beauty, tmp_path_factory):
    store = ResultStore(tmp_path_factory.mktemp("results"))
    spec = RunSpec.resolve("pop", "beauty", "base", "mini", {"train.progress": False})
    return store, execute(spec, store=store, dataset=mini_beauty)


def test_pop_matches_an_independent_count(pop_run, mini_beauty):
    """Pop's test HR@10 recomputed here from raw training counts with the pessimistic tie rule."""
    _, out = pop_run
    counts = np.bincount(mini_beauty.train_items, minlength=mini_beauty.n_items)
    cand = mini_beauty.candidates("test")
    scores = counts[cand]
    ranks = (scores[:, 1:] >= scores[:, :1]).sum(1)
    expected = float((ranks < 10).mean())
    m = out["metrics"].query("split == 'test' and protocol == 'sampled' and group == 'overall' "
                             "and metric == 'hit' and k == 10")
    assert m["value"].item() == pytest.approx(expected)
    assert expected > RANDOM_HR10  # popularity beats random on Amazon data


def test_store_layout_rows_and_per_user_alignment(pop_run, mini_beauty):
    store, out = pop_run
    metrics = out["metrics"]
    # 2 splits x 2 protocols x 2 groups x 2 metrics x 3 Ks
    assert len(metrics) == 48
    for col in ("run_key", "data_hash", "feature_key", "seed", "params", "epochs", "wall_seconds"):
        assert col in metrics.columns
    assert (metrics["data_hash"] == mini_beauty.content_hash).all()
    per_user = store.per_user(out["run_key"])
    test = per_user.query("split == 'test' and protocol == 'sampled'")
    assert test["user"].tolist() == list(range(mini_beauty.n_users))
    assert test["tail"].to_numpy().tolist() == mini_beauty.tail_users("test").tolist()
    manifest = store.manifest(out["run_key"])
    assert manifest["git_commit"] and "torch" in manifest["versions"]
    assert manifest["spec"]["model"] == "pop"
    assert (store.root / "metrics.csv").exists()


def test_finished_run_is_skipped(pop_run, mini_beauty):
    store, out = pop_run
    manifest = store.run_dir(out["run_key"]) / "manifest.json"
    before = manifest.stat().st_mtime_ns
    spec = RunSpec.resolve("pop", "beauty", "base", "mini", {"train.progress": False})
    again = execute(spec, store=store, dataset=mini_beauty)
    assert again["run_key"] == out["run_key"]
    assert manifest.stat().st_mtime_ns == before


def test_sasrec_learns_far_above_random_on_mini_beauty(mini_beauty, tmp_path):
    spec = RunSpec.resolve("sasrec", "beauty", "base", "mini",
                           {"train.max_epochs": 6, "train.progress": False})
    out = execute(spec, store=ResultStore(tmp_path), dataset=mini_beauty)
    table = headline(out["metrics"])
    valid_hr = table.loc[("valid", "overall"), "HR@10"]
    assert valid_hr > 2.5 * RANDOM_HR10
    history = out["manifest"]["history"]
    assert history[-1]["valid_ndcg@10"] > history[0]["valid_ndcg@10"]
    assert out["manifest"]["identity"]["feature_key"] == "id"


def test_overrides_reach_model_and_trainer():
    spec = RunSpec.resolve("sasrec", "beauty", "base", "mini", {"hidden": 32, "train.patience": 3})
    assert spec.params["hidden"] == 32 and spec.train["patience"] == 3
    assert spec.params["max_len"] == 50  # from the mini profile
    other = RunSpec.resolve("sasrec", "beauty", "base", "mini", {"hidden": 64})
    assert spec.key("h", "id") != other.key("h", "id")
