"""Derive the bundled mini data sets: real user subsets of a sequences source, whole histories kept.

Rule (seeded): breadth-first over the user-item graph. Start from a user drawn with `seed`;
for each item of the kept users, in the order they were reached, keep every user who bought it
(in a seeded order) until `n_users` are kept. Users reached this way share items, so the subset
is far denser than a random draw of the same size and CPU-sized training learns something,
while every kept history stays whole and in time order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from protocol.data.sequences import read_sequences_source
from protocol.fileio import atomic_dir


def select_users(histories: list[list[str]], n_users: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    buyers: dict[str, list[int]] = {}
    for u in rng.permutation(len(histories)):
        for item in histories[u]:
            buyers.setdefault(item, []).append(int(u))
    first = int(rng.integers(len(histories)))
    kept, kept_set, queue, head = [first], {first}, list(histories[first]), 0
    while len(kept) < n_users and head < len(queue):
        for u in buyers[queue[head]]:
            if u not in kept_set:
                kept.append(u)
                kept_set.add(u)
                queue.extend(histories[u])
                if len(kept) == n_users:
                    break
        head += 1
    return sorted(kept)


def make_mini(source: Path, out: Path, n_users: int = 2000, seed: int = 0) -> None:
    users, histories, _ = read_sequences_source(source)
    kept = select_users(histories, n_users, seed)
    used = {i for u in kept for i in histories[u]}
    items = pd.read_csv(source / "items.tsv", sep="\t", dtype=str, keep_default_na=False, quoting=3)
    with atomic_dir(out) as tmp:
        with open(tmp / "sequences.txt", "w") as f:
            for u in kept:
                f.write(" ".join([users[u], *histories[u]]) + "\n")
        items[items["item_id"].isin(used)].to_csv(tmp / "items.tsv", sep="\t", index=False, quoting=3)
