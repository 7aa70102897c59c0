"""The P5-style source of ../shared/data: sequences.txt (user then items in time order) + items.tsv."""
from __future__ import annotations

import html
import io
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError


def read_sequences_source(folder: Path) -> tuple[list[str], list[list[str]], pd.DataFrame]:
    """Return raw user ids, each user's raw item ids in time order, and the item table."""
    seq_path, items_path = folder / "sequences.txt", folder / "items.tsv"
    for p in (seq_path, items_path):
        if not p.exists():
            raise HarnessError(f"{p} is missing; a sequences source needs sequences.txt and items.tsv.")
    users, histories, first_line = [], [], {}
    for line_no, line in enumerate(_utf8_text(seq_path).split("\n"), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise HarnessError(f"{seq_path}:{line_no}: a line needs a user id and at least one item.")
        if parts[0] in first_line:
            raise HarnessError(f"{seq_path}:{line_no}: user '{parts[0]}' also has line {first_line[parts[0]]}; "
                               "give each user one line with all their items in time order.")
        first_line[parts[0]] = line_no
        users.append(parts[0])
        histories.append(parts[1:])
    items = pd.read_csv(io.StringIO(_utf8_text(items_path)), sep="\t", dtype=str, keep_default_na=False, quoting=3)
    if "item_id" not in items.columns:
        raise HarnessError(f"{items_path}: the header has no 'item_id' column.")
    known = set(items["item_id"])
    for user, history in zip(users, histories):
        unknown = [i for i in history if i not in known]
        if unknown:
            raise HarnessError(f"{seq_path}:{first_line[user]}: item '{unknown[0]}' has no row in {items_path}; "
                               "add it there or remove it from the sequence.")
    # Other data sets' ids (Toys' transrec_item_id) are not item text: the prompts must not read them.
    items = items.drop(columns=[c for c in items.columns if c.endswith("_id") and c != "item_id"])
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


def _utf8_text(path: Path) -> str:
    """The file's text, refusing a byte that is not UTF-8 with its line number."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise HarnessError(f"{path}:{line}: byte {data[err.start]:#04x} is not UTF-8; save the file as UTF-8.") from None
