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
