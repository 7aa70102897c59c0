"""The P5-style source of ../shared/data: sequences.txt (user then items in time order) + items.tsv."""
from __future__ import annotations

import codecs
import html
from pathlib import Path

import pandas as pd

from protocol.errors import HarnessError
from protocol.fileio import unreadable


def read_sequences_source(folder: Path) -> tuple[list[str], list[list[str]], pd.DataFrame]:
    """Return raw user ids, each user's raw item ids in time order, and the item table."""
    seq_path, items_path = folder / "sequences.txt", folder / "items.tsv"
    for p in (seq_path, items_path):
        if not p.is_file():
            raise HarnessError(f"{p} is {'a folder' if p.is_dir() else 'missing'}; a sequences source needs "
                               "the files sequences.txt and items.tsv.")
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
    items = read_items_table(items_path)
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
    if "image" in items.columns:
        items["image"] = items["image"].map(lambda value: _image_path(value, folder))
    if "title" in items.columns:
        # The 2014 metadata keeps HTML entities in titles ("S&amp;W"); prompts and renders want the text.
        items["title"] = items["title"].map(html.unescape)
    if "categories" in items.columns:
        # " > " joins a path, " | " separates paths; keep the list-of-paths form of Amazon meta.
        items["categories"] = items["categories"].map(
            lambda s: [p.split(" > ") for p in s.split(" | ")] if s else []
        )
    return users, histories, items


def _image_path(value: str, folder: Path) -> str:
    """An item's image as items.csv stores it: a URL (what `data images` fetches) or an absolute
    path as given; a relative path is relative to the source folder, but the extractors read
    items.csv's paths relative to the prepared directory, so it is stored absolute."""
    if not value or "://" in value or Path(value).expanduser().is_absolute():
        return str(Path(value).expanduser()) if value.startswith("~") else value
    return str(folder.resolve() / value)


def read_items_table(path: Path) -> pd.DataFrame:
    """items.tsv as strings: a header with item_id, then one tab-separated row per item.

    Read here rather than by pandas so that every refusal names its line: a row with more fields
    than the header (a tab inside a title) and a second row of an item that says something else.
    A repeat identical to the item's first row is read once, and said.
    """
    lines = [(no, line.rstrip("\r")) for no, line in enumerate(_utf8_text(path).split("\n"), 1)]
    lines = [(no, line) for no, line in lines if line]
    if not lines:
        raise HarnessError(f"{path} is empty; write a header line with an item_id column, then one "
                           "tab-separated row per item.")
    header = lines[0][1].split("\t")
    if "item_id" not in header:
        raise HarnessError(f"{path}: the header has no 'item_id' column.")
    id_at = header.index("item_id")
    rows, first = [], {}
    for no, line in lines[1:]:
        fields = line.split("\t")
        if len(fields) > len(header):
            raise HarnessError(f"{path}:{no}: {len(fields)} tab-separated fields, but the header has "
                               f"{len(header)}; a tab inside a value (a title?) splits it: replace it with a space.")
        fields += [""] * (len(header) - len(fields))
        item = fields[id_at]
        if item in first:
            seen_no, seen = first[item]
            if fields != seen:
                raise HarnessError(f"{path}:{no}: item '{item}' also has line {seen_no}, with other values; "
                                   "keep one row per item.")
            continue
        first[item] = (no, fields)
        rows.append(fields)
    if len(rows) < len(lines) - 1:
        print(f"{path}: {len(lines) - 1 - len(rows)} rows repeat an earlier row of the same item; each is read once.")
    return pd.DataFrame(rows, columns=header, dtype=str)


def _utf8_text(path: Path) -> str:
    """The file's text, refusing a byte that is not UTF-8 with its line number. A byte-order mark
    (some editors write one) is not part of the text: it would glue onto the first user or column."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise unreadable(path, err) from None
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise HarnessError(f"{path}:{line}: byte {data[err.start]:#04x} is not UTF-8; save the file as UTF-8.") from None
