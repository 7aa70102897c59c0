"""prepare on the real Beauty 5-core (../shared/data): counts, split, fixed negatives, seeds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from protocol.data.prepare import prepare
from protocol.data.spec import dataset_spec
from conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "amazon-beauty-5core").exists(),
                                reason="needs ../shared/data/amazon-beauty-5core")


def whole_histories(ds) -> list[set]:
    rows = pd.read_csv(ds.path / "interactions.csv", usecols=["user", "item"])
    bounds = np.searchsorted(rows["user"].to_numpy(), np.arange(ds.n_users + 1))
    items = rows["item"].to_numpy()
    return [set(items[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def test_beauty_5core_counts(beauty_5core):
    stats = beauty_5core.meta["stats"]
    assert (beauty_5core.n_users, beauty_5core.n_items, stats["interactions"]) == (22363, 12101, 198502)
    assert len(beauty_5core.train_users) == 198502 - 2 * 22363
    assert stats["tail_items"] == 0  # every 5-core item has at least 5 interactions


def test_split_is_the_last_two_items_of_each_sequence(beauty_5core):
    """Read sequences.txt independently: last item test, second-last valid, the rest train."""
    item_index = dict(zip(beauty_5core.items["raw_id"].astype(str), beauty_5core.items["index"]))
    users = pd.read_csv(beauty_5core.path / "users.csv", dtype={"raw_id": str})["raw_id"]
    user_index = dict(zip(users, range(len(users))))
    lines = (SHARED_DATA / "amazon-beauty-5core" / "sequences.txt").read_text().split("\n")
    checked = 0
    for parts in (line.split() for line in lines if line.strip()):
        u, seq = user_index[parts[0]], [item_index[i] for i in parts[1:]]
        assert beauty_5core.targets["test"][u] == seq[-1]
        assert beauty_5core.targets["valid"][u] == seq[-2]
        assert beauty_5core.train_sequences[u].tolist() == seq[:-2]
        checked += 1
    assert checked == 22363


def test_negatives_are_outside_the_whole_history_and_distinct(beauty_5core):
    history = whole_histories(beauty_5core)
    for split in ("valid", "test"):
        negatives = beauty_5core.negatives[split]
        assert negatives.shape == (22363, 100) and negatives.dtype == np.int64
        assert negatives.min() >= 0 and negatives.max() < 12101
        sorted_rows = np.sort(negatives, axis=1)
        assert (np.diff(sorted_rows, axis=1) > 0).all()  # distinct within each row
        assert not any(history[u] & set(row) for u, row in enumerate(negatives.tolist()))
    # Valid and test negatives are two draws, not one list reused.
    assert (beauty_5core.negatives["valid"] != beauty_5core.negatives["test"]).any(axis=1).all()


def test_same_seed_same_negatives_other_seed_other_negatives(beauty_5core, tmp_path):
    again = prepare(dataset_spec("beauty-5core"), out_dir=tmp_path / "same-seed")
    assert again.path != beauty_5core.path
    assert again.content_hash == beauty_5core.content_hash
    for split in ("valid", "test"):
        assert np.array_equal(again.negatives[split], beauty_5core.negatives[split])

    other = prepare(dataset_spec("beauty-5core", overrides={"negative_seed": 7}),
                    out_dir=tmp_path / "seed-7")
    assert other.meta["recipe"]["negative_seed"] == 7
    assert other.content_hash != beauty_5core.content_hash
    for split in ("valid", "test"):
        same_rows = (other.negatives[split] == beauty_5core.negatives[split]).all(axis=1)
        assert not same_rows.any()
    # Only the negatives change with the seed: the split is the same.
    for split in ("valid", "test"):
        assert np.array_equal(other.targets[split], beauty_5core.targets[split])
