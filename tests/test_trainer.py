"""The trainer: seeded runs reproduce, and a run killed mid-way resumes to the same metrics."""
from __future__ import annotations

import pytest
from test_models import random_features

from recommenders import MODELS
from recommenders.trainer import TrainConfig, Trainer, seed_everything

SETTINGS = {"hidden": 16, "max_len": 20, "alpha": 0.05, "teacher_epochs": 1}


def make_trainer(dataset, features, checkpoint=None, seed=7):
    seed_everything(seed)
    model = MODELS.get("bert4rec")(dataset, features, **SETTINGS)
    config = TrainConfig(max_epochs=3, patience=10, seed=seed, progress=False, full_ranking=False)
    return Trainer(model, dataset, config, checkpoint=checkpoint)


def outcome(trainer):
    result = trainer.fit()
    test = trainer.evaluate("test", "sampled")
    return ([{k: v for k, v in h.items() if k != "seconds"} for h in result.history], result.best_epoch,
            test.per_user["rank"].tolist())


@pytest.fixture(scope="module")
def features(mini_beauty):
    return random_features(mini_beauty, seed=3)  # BERT4Rec with RAT: masking, alignment, dropout


@pytest.fixture(scope="module")
def uninterrupted(mini_beauty, features):
    return outcome(make_trainer(mini_beauty, features))


def test_identical_seeds_reproduce_identical_metrics(mini_beauty, features, uninterrupted):
    assert outcome(make_trainer(mini_beauty, features)) == uninterrupted
    assert outcome(make_trainer(mini_beauty, features, seed=8)) != uninterrupted


def test_killed_run_resumes_to_the_same_metrics(tmp_path, mini_beauty, features, uninterrupted):

    class Killed(Exception):
        pass

    checkpoint = tmp_path / "run.pt"
    trainer = make_trainer(mini_beauty, features, checkpoint)

    def kill_at_epoch_2(epoch):
        if epoch == 2:
            raise Killed

    trainer.model.on_epoch_start = kill_at_epoch_2
    with pytest.raises(Killed):
        trainer.fit()
    assert checkpoint.exists()

    resumed = make_trainer(mini_beauty, features, checkpoint, seed=7)
    assert outcome(resumed) == uninterrupted


class CountingScores:
    """Counts a model's scoring calls; `factors=False` hides its user and item vectors, so the
    evaluator takes the path of models that only give a score matrix (MMRec's, RecBole's)."""

    def __init__(self, model, factors: bool):
        self.model, self.factors, self.calls = model, factors, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def score_factors(self, batch):
        self.calls += self.factors
        return self.model.score_factors(batch) if self.factors else None

    def full_sort_predict(self, batch):
        self.calls += 1
        return self.model.full_sort_predict(batch)


@pytest.mark.parametrize("name", ["vbpr", "sasrec"])
def test_one_scoring_pass_serves_every_split_and_protocol_and_both_paths_agree(name, mini_beauty, features):
    """A user-only model scores each batch once for valid and test, sampled and full; a sequence
    model once per split. The block-by-block path gives the ranks of the score-matrix path."""
    seed_everything(0)
    params = {"embedding_size": 16} if name == "vbpr" else {"hidden": 16, "max_len": 20}
    model = MODELS.get(name)(mini_beauty, features if name == "vbpr" else None, **params)
    config = TrainConfig(progress=False, eval_batch_size=500)
    results = {}
    for factors in (True, False):
        trainer = Trainer(model, mini_beauty, config)
        trainer.model = counting = CountingScores(model, factors)
        results[factors] = trainer.evaluate_all()
        batches = -(-mini_beauty.n_users // 500)
        assert counting.calls == batches * (2 if name == "sasrec" else 1)
    assert set(results[True]) == {(s, p) for s in ("valid", "test") for p in ("sampled", "full")}
    for key, evaluation in results[True].items():
        ranks, other = evaluation.per_user["rank"], results[False][key].per_user["rank"]
        assert ranks.tolist() == other.tolist(), key
        assert ranks.nunique() > 10, key  # a real ranking, not a constant
