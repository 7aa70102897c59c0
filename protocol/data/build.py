"""Write the dataset directory (DESIGN contract 1) from filtered interactions and an item table.

Files: items.csv, users.csv, interactions.csv (with a split label), negatives_valid.npy,
negatives_test.npy and meta.json (recipe, source hashes, statistics, content hash).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from protocol.data.negatives import sample_negatives
from protocol.errors import HarnessError
from protocol.fileio import atomic_dir, combined_sha256, file_sha256, write_json

CONTENT_FILES = ("items.csv", "users.csv", "interactions.csv",
                 "negatives_valid.npy", "negatives_test.npy")
# Everything `prepare` and `data images` write into a dataset directory: a folder holding only
# these (and meta.json) is one the harness made, so --force may replace it.
DATASET_ENTRIES = (*CONTENT_FILES, "meta.json", "images", "images_report.csv", "images_report.json")
ITEM_COLUMNS = ("title", "brand", "categories", "price", "description", "image")
# 2: identifier columns of a sequences source (Toys' transrec_item_id) are no longer item meta
FORMAT_VERSION = 2


def tail_items(popularity: np.ndarray, threshold: int) -> np.ndarray:
    """The tail rule (DESIGN): an item is tail when it has fewer than `threshold` interactions
    in the whole data set (train, valid and test)."""
    return popularity < threshold


def is_dataset_dir(path: Path) -> bool:
    """A dataset directory the harness wrote: meta.json and nothing but its own files (and the
    `.*.tmp` temporaries of its atomic writes)."""
    path = Path(path)
    return (path / "meta.json").is_file() and all(
        p.name in DATASET_ENTRIES or (p.name.startswith(".") and p.name.endswith(".tmp"))
        for p in path.iterdir())


def _split_labels(user_codes: np.ndarray) -> np.ndarray:
    """Leave-one-out by time on rows sorted by (user, time): last test, second-last valid."""
    n = len(user_codes)
    is_last = np.ones(n, dtype=bool)
    is_last[:-1] = user_codes[1:] != user_codes[:-1]
    is_second = np.zeros(n, dtype=bool)
    is_second[:-1] = is_last[1:] & ~is_last[:-1]
    return np.where(is_last, "test", np.where(is_second, "valid", "train"))


def _item_table(items: pd.DataFrame, used: list[str], where: str) -> pd.DataFrame:
    table = items.drop_duplicates("raw_id").set_index("raw_id")
    missing = [i for i in used if i not in table.index]
    if missing:
        raise HarnessError(
            f"{where} has no entry for {len(missing)} interacted items (e.g. '{missing[0]}'); "
            "use the meta file of the same category as the reviews."
        )
    table = table.loc[used].reset_index()
    for col in ITEM_COLUMNS:
        if col not in table.columns:
            table[col] = ""
    if "asin" not in table.columns:
        table["asin"] = table["raw_id"]
    # The raw meta record in its stored key order: the extractors' prompts read it. An image URL
    # is not item text (the prompts skip the 2014 record's imUrl too).
    meta_cols = [c for c in items.columns if c not in ("raw_id", "meta", "image")]
    if "meta" not in table.columns:
        table["meta"] = [
            {c: row[c] for c in meta_cols if row[c] not in ("", None)} for _, row in table.iterrows()
        ]
    table["meta"] = table["meta"].map(lambda m: json.dumps(m, ensure_ascii=False))
    table["categories"] = table["categories"].map(
        lambda c: c if isinstance(c, str) else json.dumps(c, ensure_ascii=False))
    return table


def build_dataset(out_dir: Path, interactions: pd.DataFrame, items: pd.DataFrame, spec,
                  sources: dict[str, str], items_where: str, render_images=None, rebuild: str = "") -> dict:
    """`interactions`: user, item, time rows already filtered and in (user, time) order.

    `items`: the item table keyed by `raw_id` (plus any of ITEM_COLUMNS and an optional `meta`).
    Item index = order of first appearance in the item table; user index = order of appearance.
    `render_images(folder, item_table)`, if given, writes images into the new directory and
    returns each item's image path, before anything is renamed into place. `rebuild`: the command
    that prepares it again, kept in meta.json for the errors of a later load by path.
    """
    if interactions.empty:
        raise HarnessError("no interactions are left after filtering; check the source files and "
                           "the recipe's min_count.")
    used = set(interactions["item"].unique())
    order = [i for i in items["raw_id"].drop_duplicates() if i in used]
    order += sorted(used - set(order))  # reported as missing by _item_table
    item_table = _item_table(items, order, items_where)
    item_index = {raw: i for i, raw in enumerate(order)}

    users = pd.unique(interactions["user"])
    user_index = {raw: u for u, raw in enumerate(users)}
    rows = pd.DataFrame({
        "user": interactions["user"].map(user_index).to_numpy(np.int64),
        "item": interactions["item"].map(item_index).to_numpy(np.int64),
        "time": interactions["time"].to_numpy(),
    })
    rows["split"] = _split_labels(rows["user"].to_numpy())

    n_users, n_items = len(users), len(order)
    popularity = np.bincount(rows["item"], minlength=n_items)
    item_table.insert(0, "index", np.arange(n_items))
    item_table["popularity"] = popularity
    item_table["is_tail"] = tail_items(popularity, spec.tail_threshold)

    bounds = np.flatnonzero(np.r_[True, rows["user"].to_numpy()[1:] != rows["user"].to_numpy()[:-1]])
    histories = np.split(rows["item"].to_numpy(), bounds[1:])
    rng = np.random.default_rng(spec.negative_seed)
    neg_valid = sample_negatives(histories, n_items, spec.n_negatives, rng)
    neg_test = sample_negatives(histories, n_items, spec.n_negatives, rng)

    test_items = rows.loc[rows["split"] == "test", "item"].to_numpy()
    stats = {
        "users": n_users, "items": n_items, "interactions": len(rows),
        "sparsity": 1.0 - len(rows) / (n_users * n_items),
        "avg_sequence_length": len(rows) / n_users,
        "tail_items": int(item_table["is_tail"].sum()),
        "tail_test_users": int(item_table["is_tail"].to_numpy()[test_items].sum()),
    }
    with atomic_dir(out_dir) as tmp:
        if render_images is not None:
            item_table["image"] = render_images(tmp, item_table)
        item_table.to_csv(tmp / "items.csv", index=False)
        pd.DataFrame({"index": np.arange(n_users), "raw_id": users}).to_csv(tmp / "users.csv", index=False)
        rows.to_csv(tmp / "interactions.csv", index=False)
        np.save(tmp / "negatives_valid.npy", neg_valid)
        np.save(tmp / "negatives_test.npy", neg_test)
        hashes = {f: file_sha256(tmp / f) for f in CONTENT_FILES}
        meta = {
            "format_version": FORMAT_VERSION,
            "name": spec.name,
            "domain": spec.domain,
            "recipe": spec.recipe_settings() | {"min_count": spec.min_count},
            "sources": sources,
            "stats": stats,
            "content_hash": combined_sha256(hashes.values()),
            "files": hashes,  # per file, so a load can name the one that changed
            "rebuild": rebuild,
        }
        write_json(tmp / "meta.json", meta)
    return meta
