"""The evaluation protocol on a hand-built data set whose every answer is counted by hand below.

Each test guards one rule that a one-line change could break without changing any other
number: selection on validation (grid and early stopping), the tail rule and the tail group,
pessimistic ties, and full ranking's mask of the user's other items.

The data set (recipe none, 10 fixed negatives, tail threshold 4), one line per user, items in
time order (the last is the test target, the one before it the validation target):

    u0: i2 i3 i1 i0         train i2 i3,       valid i1,  test i0
    u1: i2 i4 i0 i1         train i2 i4,       valid i0,  test i1
    u2: i0 i1 i3 i5         train i0 i1,       valid i3,  test i5
    u3: i1 i2 i4 i6         train i1 i2,       valid i4,  test i6
    u4: i7 i8 ... i18       train i7..i16,     valid i17, test i18
    u5: i19 i20 ... i29     train i19..i27,    valid i28, test i29

Item k is index k (items.tsv lists i0..i29 in order). Interactions per item, all splits:
i0 3 (u0 u1 u2), i1 4 (u0 u1 u2 u3), i2 3, i3 2, i4 2, every other item 1. Tail means fewer
than 4, so every item but i1 is tail. Training counts (what Pop scores): i0 1, i1 2, i2 3,
i3 1, i4 1, i5 0, i6 0, i7..i16 1, i17 0, i18 0, i19..i27 1, i28 0, i29 0.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import recommenders.pop
from harness.grid import run_grid
from protocol.data.prepare import prepare
from protocol.data.spec import DatasetSpec
from protocol.evaluate import full_ranks, sampled_ranks
from protocol.store import ResultStore
from recommenders.base import Recommender
from recommenders.pop import Pop
from recommenders.trainer import TrainConfig, Trainer

SEQUENCES = ["u0 i2 i3 i1 i0", "u1 i2 i4 i0 i1", "u2 i0 i1 i3 i5", "u3 i1 i2 i4 i6",
             "u4 " + " ".join(f"i{k}" for k in range(7, 19)),
             "u5 " + " ".join(f"i{k}" for k in range(19, 30))]
N_ITEMS, N_NEGATIVES = 30, 10
TEST_TAIL = [True, False, True, True, True, True]  # test targets i0 i1 i5 i6 i18 i29
VALID_TAIL = [False, True, True, True, True, True]  # valid targets i1 i0 i3 i4 i17 i28


def hand_spec(source) -> DatasetSpec:
    """The docstring's data set written as a sequences source in folder `source`."""
    source.mkdir(parents=True, exist_ok=True)
    (source / "sequences.txt").write_text("\n".join(SEQUENCES) + "\n")
    (source / "items.tsv").write_text("item_id\ttitle\n" + "".join(f"i{k}\titem {k}\n" for k in range(N_ITEMS)))
    return DatasetSpec(name="protocol", source="sequences", path=str(source), recipe="none",
                       min_user_len=3, n_negatives=N_NEGATIVES, negative_seed=1, tail_threshold=4)


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocol")
    return prepare(hand_spec(root / "source"), out_dir=root / "dataset")


def test_the_hand_built_data_set_is_what_the_docstring_says(hand):
    assert (hand.n_users, hand.n_items) == (6, N_ITEMS)
    assert hand.targets["valid"].tolist() == [1, 0, 3, 4, 17, 28]
    assert hand.targets["test"].tolist() == [0, 1, 5, 6, 18, 29]


# -- the tail rule -------------------------------------------------------------------------
def test_an_item_is_tail_with_fewer_than_4_interactions_not_at_most_4(hand):
    expected = [k != 1 for k in range(N_ITEMS)]  # i0 has 3 (tail), i1 has exactly 4 (not tail)
    assert hand.item_is_tail.tolist() == expected
    assert pd.read_csv(hand.path / "items.csv")["is_tail"].tolist() == expected
    assert hand.meta["stats"]["tail_items"] == N_ITEMS - 1


def test_a_user_is_tail_by_the_splits_own_target(hand):
    assert hand.tail_users("test").tolist() == TEST_TAIL
    assert hand.tail_users("valid").tolist() == VALID_TAIL
    assert hand.meta["stats"]["tail_test_users"] == 5
    # ... and that is the group every evaluation reports
    trainer = Trainer(Pop(hand), hand, TrainConfig(max_epochs=0, progress=False))
    for split, expected in (("test", TEST_TAIL), ("valid", VALID_TAIL)):
        for protocol in ("sampled", "full"):
            per_user = trainer.evaluate(split, protocol).per_user
            assert per_user["tail"].tolist() == expected, (split, protocol)
    summary = trainer.evaluate("test", "sampled").summary()
    assert set(summary.query("group == 'tail'")["n"]) == {5}


# -- ties count against the target ---------------------------------------------------------
def test_ties_count_against_the_target_in_sampled_and_full_ranking():
    # Target (column 0) 0.5, tied by two candidates, beaten by none: pessimistic rank 2.
    assert sampled_ranks(np.array([[0.5, 0.5, 0.1, 0.5]])).tolist() == [2]
    # Target item 1 (0.5) tied by items 2 and 3; item 4 (0.9) is masked: rank 2.
    scores = np.array([[0.3, 0.5, 0.5, 0.5, 0.9]])
    import scipy.sparse as sp

    masked = sp.csr_matrix(np.array([[0, 0, 0, 0, 1]], dtype=np.float32))
    assert full_ranks(scores, np.array([1]), masked).tolist() == [2]


def test_pop_ranks_on_the_hand_built_data_set(hand):
    """Pop's test ranks, counted by hand from the training counts in the docstring."""
    trainer = Trainer(Pop(hand), hand, TrainConfig(max_epochs=0, progress=False))
    # Full ranking masks each user's train and valid items (never the target); ties count:
    # u0: target i0 (count 1); i1 (valid) and i2, i3 (train) are masked; count >= 1 among the
    #     rest: i4, i7..i16, i19..i27 = 1 + 10 + 9 = 20
    # u1: target i1 (count 2); only i2 (count 3) scores higher and it is u1's training item: 0
    # u2: target i5 (count 0): every unmasked item ties or beats it: 29 - 3 masked = 26
    # u3: target i6 (count 0): 29 - 3 = 26
    # u4: target i18 (count 0): 29 - 10 train - 1 valid = 18
    # u5: target i29 (count 0): 29 - 9 train - 1 valid = 19
    assert trainer.evaluate("test", "full").per_user["rank"].tolist() == [20, 0, 26, 26, 18, 19]
    # Sampled: a target with count 0 is tied or beaten by all 10 negatives, whichever they are.
    assert trainer.evaluate("test", "sampled").per_user["rank"].tolist()[2:] == [N_NEGATIVES] * 4


# -- selection on validation only ----------------------------------------------------------
def scripted_table(dataset, favour: str | None) -> torch.Tensor:
    """(users, items) scores: +1 on each user's `favour` target, -1 on the other split's, else 0.

    Sampled ranks (10 negatives, all scored 0): the favoured split's target ranks 0 (HR@10 =
    NDCG@10 = 1), the other's ranks 10 (HR@10 = NDCG@10 = 0); with no favour every target ties
    all its negatives and ranks 10 (0).
    """
    table = torch.zeros(dataset.n_users, dataset.n_items)
    if favour is not None:
        users = torch.arange(dataset.n_users)
        other = "test" if favour == "valid" else "valid"
        table[users, torch.as_tensor(dataset.targets[favour])] = 1.0
        table[users, torch.as_tensor(dataset.targets[other])] = -1.0
    return table


class ScriptedPop(Recommender):
    """Stands in for Pop in a grid over `lr`: 0.1 is the best point on validation and the worst on
    test, 0.2 the best on test and the worst on validation, 0.3 scores every item 0."""

    name, input_type = "pop", "none"

    def __init__(self, dataset, features=None, **params):
        super().__init__(dataset, features, **params)
        favour = {0.1: "valid", 0.2: "test"}.get(self.params["lr"])
        self.register_buffer("table", scripted_table(dataset, favour))

    def full_sort_predict(self, batch):
        return self.table[batch["users"]]


def test_the_grid_picks_its_winner_on_validation_never_on_test(hand, tmp_path, monkeypatch):
    monkeypatch.setattr(recommenders.pop, "Pop", ScriptedPop)
    overrides = {"grid.lr": [0.2, 0.1, 0.3], "train.full_ranking": False, "train.progress": False}
    out = run_grid("pop", "protocol", store=ResultStore(tmp_path), overrides=overrides, data=hand)
    assert out["points"]["valid"].tolist() == [0.0, 1.0, 0.0]
    winner = out["row"]
    assert winner["run_key"] == out["points"]["run_key"][1] and winner["chosen"] == '{"lr": 0.1}'
    assert winner["valid_value"] == 1.0
    assert winner["test_sampled_overall_ndcg@10"] == 0.0  # the winner's test numbers, worst of the grid


class Phased(Recommender):
    """A trainable model whose scores follow the epoch: epoch 1 favours validation targets (best
    on validation, worst on test), epoch 2 test targets, epoch 3 neither. The phase is a buffer,
    so the trainer's saved best state restores it."""

    name, input_type = "phased", "pairwise"

    def __init__(self, dataset):
        super().__init__(dataset)
        self.weight = nn.Parameter(torch.zeros(1))  # something to train
        self.register_buffer("tables", torch.stack([scripted_table(dataset, f) for f in ("valid", "test", None)]))
        self.register_buffer("phase", torch.zeros((), dtype=torch.long))

    def on_epoch_start(self, epoch):
        self.phase.fill_(min(epoch, 3) - 1)

    def calculate_loss(self, batch):
        return (self.weight ** 2).sum()

    def full_sort_predict(self, batch):
        return self.tables[self.phase][batch["users"]]


@pytest.mark.parametrize("patience", [10, 1])
def test_early_stopping_and_the_kept_state_follow_validation_never_test(hand, patience):
    trainer = Trainer(Phased(hand), hand, TrainConfig(max_epochs=3, patience=patience, seed=0,
                                                      full_ranking=False, progress=False))
    result = trainer.fit()
    assert [h["valid_ndcg@10"] for h in result.history] == [1.0, 0.0, 0.0][:result.epochs_run]
    assert result.best_epoch == 1
    assert result.epochs_run == (3 if patience == 10 else 2)  # patience 1: stops after epoch 2
    assert trainer.evaluate("valid", "sampled").value("ndcg", 10) == 1.0  # epoch 1's state is back
    assert trainer.evaluate("test", "sampled").value("ndcg", 10) == 0.0
