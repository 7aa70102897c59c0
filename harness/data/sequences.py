"""The P5-style source of ../shared/data: sequences.txt (user then items in time order) + items.tsv."""
from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError


def read_sequences_source(folder: Path) -> tuple[list[str], list[list[str]], pd.DataFrame]:
    """Return raw user ids, each user's raw item ids in time order, and the item table."""
    seq_path, items_path = folder / "sequences.txt", folder / "items.tsv"
    for p in (seq_path, items_path):
        if not p.exists():
            raise HarnessError(f"{p} is missing; a sequences source needs sequences.txt and items.tsv.")
    users, histories = [], []
    with open(seq_path) as f:
        for line_no, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 2:
                raise HarnessError(f"{seq_path}:{line_no}: a line needs a user id and at least one item.")
            users.append(parts[0])
            histories.append(parts[1:])
    items = pd.read_csv(items_path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    if "item_id" not in items.columns:
        raise HarnessError(f"{items_path}: the header has no 'item_id' column.")
    # image_url (the Sports file) is the 2014 meta's imUrl: the item table's `image` column.
    items = items.rename(columns={"item_id": "raw_id", "image_url": "image"})
    if "title" in items.columns:
        # The 2014 metadata keeps HTML entities in titles ("S&amp;W"); prompts and renders want the text.
        items["title"] = items["title"].map(html.unescape)
    if "categories" in items.columns:
        # " > " joins a path, " | " separates paths; keep the list-of-paths form of Amazon meta.
        items["categories"] = items["categories"].map(
            lambda s: [p.split(" > ") for p in s.split(" | ")] if s else []
        )
    return users, histories, items
