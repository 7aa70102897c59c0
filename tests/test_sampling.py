"""Training negatives follow MMRec's TrainDataLoader: uniform over items seen in training,
never one of the user's training items."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from protocol.errors import HarnessError
from recommenders.sampling import pairwise_batches


def hand_built(train: dict[int, list[int]], n_items: int) -> SimpleNamespace:
    """The fields the pairwise sampler reads, for training histories `train` (user -> items)."""
    users = np.array([u for u, items in train.items() for _ in items])
    items = np.array([i for its in train.values() for i in its])
    return SimpleNamespace(n_items=n_items, train_users=users, train_items=items,
                           train_keys=np.unique(users * n_items + items))


def test_negatives_are_training_items_the_user_has_not_seen():
    # 7 items; 5 and 6 appear only in validation/test (not in any training history).
    train = {0: [0, 1], 1: [2], 2: [0, 3, 4], 3: [1, 2, 3]}
    data = hand_built(train, n_items=7)
    rng = np.random.default_rng(0)
    drawn = {u: set() for u in train}
    for _ in range(200):
        for batch in pairwise_batches(data, batch_size=3, rng=rng):
            for u, n in zip(batch["users"].tolist(), batch["neg"].tolist()):
                drawn[u].add(n)
    for u, seen in train.items():
        # every allowed item turns up in 200 epochs, and nothing else ever does
        assert drawn[u] == {0, 1, 2, 3, 4} - set(seen), u


def test_a_user_with_every_training_item_is_refused():
    data = hand_built({0: [0, 1], 1: [1]}, n_items=3)
    with pytest.raises(HarnessError, match="user 0 has every item seen in training"):
        next(pairwise_batches(data, batch_size=2, rng=np.random.default_rng(0)))
