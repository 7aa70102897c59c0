"""Fixed evaluation negatives: distinct, uniform over items outside the user's whole history."""
from __future__ import annotations

import numpy as np

from protocol.errors import HarnessError


def sample_negatives(histories: list[np.ndarray], n_items: int, n: int,
                     rng: np.random.Generator) -> np.ndarray:
    """An (n_users, n) int64 array; row u holds n distinct items that user u never interacted with.

    A uniform sample without replacement from the catalogue, filtered to the complement of the
    history, is a uniform distinct sample from that complement; we draw enough to fill `n`.
    """
    longest = max((len(np.unique(h)) for h in histories), default=0)
    if n > n_items - longest:
        raise HarnessError(
            f"cannot draw {n} negatives: a user has {longest} of the {n_items} items; "
            f"lower n_negatives to at most {n_items - longest}."
        )
    out = np.empty((len(histories), n), dtype=np.int64)
    for u, hist in enumerate(histories):
        need = n + len(hist)
        while True:
            draw = rng.choice(n_items, size=min(n_items, need), replace=False)
            kept = draw[~np.isin(draw, hist)]
            if len(kept) >= n:
                out[u] = kept[:n]
                break
            need = min(n_items, need * 2)
    return out
