"""The paper's Table 2 row (users, items, interactions, sparsity) plus tail counts."""
from __future__ import annotations

import pandas as pd

COLUMNS = ("dataset", "users", "items", "interactions", "sparsity", "avg_length", "tail_items",
           "tail_test_users", "tail_threshold", "content_hash")


def stats_row(dataset) -> pd.DataFrame:
    s = dataset.meta["stats"]
    return pd.DataFrame([{
        "dataset": dataset.name, "users": s["users"], "items": s["items"],
        "interactions": s["interactions"], "sparsity": round(s["sparsity"], 6),
        "avg_length": round(s["avg_sequence_length"], 2),
        "tail_items": s["tail_items"], "tail_test_users": s["tail_test_users"],
        "tail_threshold": dataset.meta["recipe"]["tail_threshold"],
        "content_hash": dataset.content_hash,
    }], columns=list(COLUMNS))
