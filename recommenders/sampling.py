"""Training and evaluation batches. Training negatives exclude the user's training items."""
from __future__ import annotations

import numpy as np
import torch

from protocol.errors import HarnessError


def _known(train_keys: np.ndarray, n_items: int, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    keys = users * n_items + items
    pos = np.minimum(np.searchsorted(train_keys, keys), len(train_keys) - 1)
    return train_keys[pos] == keys


def sample_train_negatives(users: np.ndarray, dataset, rng: np.random.Generator,
                           pool: np.ndarray | None = None) -> np.ndarray:
    """One item per entry of `users`, uniform over `pool` (sorted item indices; default every
    item), that the user has no training interaction with."""
    n_items, keys = dataset.n_items, dataset.train_keys

    def draw(size):
        return rng.integers(0, n_items, size=size) if pool is None else pool[rng.integers(0, len(pool), size=size)]

    neg = draw(users.shape)
    bad = _known(keys, n_items, users, neg)
    while bad.any():
        neg[bad] = draw(int(bad.sum()))
        bad[bad] = _known(keys, n_items, users[bad], neg[bad])
    return neg


def pad_left(sequences: list[np.ndarray], max_len: int, pad: int) -> np.ndarray:
    """The last `max_len` items of each sequence, right-aligned; trimmed to the longest row."""
    width = max(1, min(max_len, max((len(s) for s in sequences), default=1)))
    out = np.full((len(sequences), width), pad, dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = seq[-width:]
        if len(tail):
            out[row, width - len(tail):] = tail
    return out


def pairwise_batches(dataset, batch_size: int, rng: np.random.Generator):
    """Shuffled training pairs, each with one negative drawn as MMRec's TrainDataLoader does:
    uniform over the items seen in training (an item seen only in validation or test is never
    a negative, so it is not pushed down before it can be a target)."""
    pool = np.unique(dataset.train_items)
    full = np.bincount(dataset.train_keys // dataset.n_items) >= len(pool)
    if full.any():
        raise HarnessError(f"user {int(np.flatnonzero(full)[0])} has every item seen in training in its training "
                           "history: no negative can be drawn; drop such users from the data set.")
    order = rng.permutation(len(dataset.train_users))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        users = dataset.train_users[idx]
        neg = sample_train_negatives(users, dataset, rng, pool)
        yield {"users": torch.from_numpy(users), "pos": torch.from_numpy(dataset.train_items[idx]),
               "neg": torch.from_numpy(neg)}


def sortish_batches(users: np.ndarray, lengths: np.ndarray, batch_size: int,
                    rng: np.random.Generator, chunk_batches: int = 50) -> list[np.ndarray]:
    """Seeded shuffle, then sort by length within chunks of `chunk_batches` batches, then shuffle
    the batches: rows of similar length share a batch, so padding (and time) stays small."""
    users = rng.permutation(users)
    batches = []
    for start in range(0, len(users), batch_size * chunk_batches):
        chunk = users[start:start + batch_size * chunk_batches]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def sequence_batches(dataset, batch_size: int, max_len: int, rng: np.random.Generator):
    sequences = dataset.train_sequences
    lengths = np.array([min(len(s), max_len) for s in sequences])
    pad = dataset.n_items
    for users in sortish_batches(np.flatnonzero(lengths > 1), lengths, batch_size, rng):
        items = pad_left([sequences[u] for u in users], max_len, pad)
        real = items != pad
        neg = np.full_like(items, pad)
        row_users = np.broadcast_to(users[:, None], items.shape)
        neg[real] = sample_train_negatives(np.ascontiguousarray(row_users[real]), dataset, rng)
        yield {"users": torch.from_numpy(users), "items": torch.from_numpy(items),
               "neg": torch.from_numpy(neg)}


def eval_batches(dataset, split: str, batch_size: int, max_len: int | None, with_candidates: bool):
    """Users in order of history length (little padding); each batch says which users it holds."""
    history = dataset.history(split) if max_len else None
    candidates = dataset.candidates(split) if with_candidates else None
    order = np.arange(dataset.n_users)
    if history is not None:
        order = np.argsort([len(h) for h in history], kind="stable")
    for start in range(0, dataset.n_users, batch_size):
        users = order[start:start + batch_size]
        batch = {"users": torch.from_numpy(users)}
        if history is not None:
            batch["history"] = torch.from_numpy(pad_left([history[u] for u in users], max_len, dataset.n_items))
        if candidates is not None:
            batch["candidates"] = torch.from_numpy(candidates[users])
        yield batch
