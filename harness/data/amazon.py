"""The raw Amazon 2014 files of one category -> raw interactions and the item table.

- reviews: `reviews_<Cat>.json.gz` or the 5-core `reviews_<Cat>_5.json.gz`; strict JSON lines
  with reviewerID, asin and unixReviewTime.
- ratings: `ratings_<Cat>.csv`; header-less rows user,item,rating,time (instead of reviews).
- meta: `meta_<Cat>.json.gz`; one Python literal a line (single quotes), read with
  ast.literal_eval, never eval: the file is data from the web.

Files are streamed line by line; gzip is recognised by its magic bytes, so plain copies work too.
Every read error names the file and the line.
"""
from __future__ import annotations

import ast
import gzip
import json
import re
import zlib
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from harness.errors import HarnessError, did_you_mean
from harness.fileio import file_sha256

# The per-category files of the 2014 release (McAuley et al.), as spelled in their file names.
CATEGORIES = (
    "Amazon_Instant_Video", "Apps_for_Android", "Automotive", "Baby", "Beauty", "Books",
    "CDs_and_Vinyl", "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry", "Digital_Music",
    "Electronics", "Grocery_and_Gourmet_Food", "Health_and_Personal_Care", "Home_and_Kitchen",
    "Kindle_Store", "Movies_and_TV", "Musical_Instruments", "Office_Products",
    "Patio_Lawn_and_Garden", "Pet_Supplies", "Sports_and_Outdoors", "Tools_and_Home_Improvement",
    "Toys_and_Games", "Video_Games",
)
# How each kind of file names its category; other names are accepted without a category check.
NAME_PATTERNS = {
    "reviews": re.compile(r"^reviews_(?P<cat>.+?)(?:_5)?\.json(?:\.gz)?$"),
    "ratings": re.compile(r"^ratings_(?P<cat>.+?)\.csv(?:\.gz)?$"),
    "meta": re.compile(r"^meta_(?P<cat>.+?)\.json(?:\.gz)?$"),
}
DOWNLOAD_HINT = "download it from the Amazon 2014 release (jmcauley.ucsd.edu/data/amazon)"
REVIEW_KEYS = ("reviewerID", "asin", "unixReviewTime")
# Meta fields -> item-table columns (DESIGN contract 1); `related` (also-bought lists) is bulky
# and unused, so it is dropped from the stored record too.
META_COLUMNS = {"title": "title", "brand": "brand", "categories": "categories", "price": "price",
                "description": "description", "imUrl": "image"}
DROPPED_META_FIELDS = ("related",)
# `related` holds only lists of asins (no braces inside), so this matches all of it. Cutting it out
# before literal_eval makes meta parsing about 3x faster on lines with ~90 related asins (measured).
RELATED_FIELD = re.compile(r"'related': \{[^{}]*\}(?:, )?")


def _category(kind: str, path: Path) -> str | None:
    """The category a file's name declares; an unknown one is refused with the closest known."""
    match = NAME_PATTERNS[kind].match(path.name)
    if not match:
        return None
    cat = match["cat"]
    if cat not in CATEGORIES:
        raise HarnessError(f"{kind} file {path.name} names unknown Amazon 2014 category '{cat}'."
                           f"{did_you_mean(cat, CATEGORIES)} Known: {', '.join(CATEGORIES)}.")
    return cat


def _source_files(spec) -> dict[str, Path]:
    """{'reviews' or 'ratings': path, 'meta': path}, checked for names, agreement and existence."""
    if bool(spec.reviews) == bool(spec.ratings):
        raise HarnessError(f"data set '{spec.name}' (source amazon) needs exactly one of reviews=... or "
                           "ratings=...; set one in its config and leave the other empty.")
    if not spec.meta:
        raise HarnessError(f"data set '{spec.name}' (source amazon) has no meta file; set "
                           "meta=meta_<Category>.json.gz in its config.")
    kind = "reviews" if spec.reviews else "ratings"
    files = {kind: spec.resolve(spec.reviews or spec.ratings), "meta": spec.resolve(spec.meta)}
    categories = {k: _category(k, p) for k, p in files.items()}
    if None not in categories.values() and len(set(categories.values())) > 1:
        raise HarnessError(f"the {kind} file is {categories[kind]} but the meta file is "
                           f"{categories['meta']}; use the meta file of the same category.")
    for k, path in files.items():
        if not path.is_file():
            raise HarnessError(f"{k} file {path.name} is missing: expected at {path}; "
                               f"{DOWNLOAD_HINT} or fix the {k} path of data set '{spec.name}'.")
    return files


def _numbered_lines(path: Path):
    """(line number, line) for the non-blank lines of a gzip or plain text file."""
    path = Path(path)
    with open(path, "rb") as probe:
        is_gzip = probe.read(2) == b"\x1f\x8b"
    line_no = 0
    try:
        with (gzip.open(path, "rt", encoding="utf-8") if is_gzip
              else open(path, encoding="utf-8")) as lines:
            # disable=None: a progress bar on a terminal, silence in logs and tests.
            for line_no, line in enumerate(tqdm(lines, desc=path.name, unit=" lines", unit_scale=True,
                                                disable=None), 1):
                if line.strip():
                    yield line_no, line
    except (EOFError, gzip.BadGzipFile, zlib.error, UnicodeDecodeError) as err:
        # EOFError: a download cut short; BadGzipFile/zlib.error: damaged bytes.
        raise HarnessError(f"{path}: cannot read line {line_no + 1} ({type(err).__name__}: {err}); "
                           f"the file is truncated or corrupt: {DOWNLOAD_HINT} again.") from None


def read_reviews(path: Path) -> pd.DataFrame:
    """JSON-lines reviews -> DataFrame[user, item, time] in file order."""
    users, items, times = [], [], []
    for line_no, line in _numbered_lines(path):
        try:
            review = json.loads(line)
            user, item, time = (review[k] for k in REVIEW_KEYS)
            times.append(int(time))
        except json.JSONDecodeError as err:
            raise HarnessError(f"{path}:{line_no}: not a JSON line ({err.msg}, column {err.colno}); "
                               "reviews files hold one JSON object a line: fix or re-download it.") from None
        except (KeyError, TypeError, ValueError, OverflowError):
            raise HarnessError(f"{path}:{line_no}: a review needs {', '.join(REVIEW_KEYS)} "
                               "(an integer time); fix the line or use the original file.") from None
        users.append(user)
        items.append(item)
    return pd.DataFrame({"user": users, "item": items, "time": times})


def read_ratings(path: Path) -> pd.DataFrame:
    """Header-less user,item,rating,time rows -> DataFrame[user, item, time] in file order."""
    users, items, times = [], [], []
    for line_no, line in _numbered_lines(path):
        try:
            # A plain split suffices: user ids and asins never hold commas or quotes.
            user, item, _rating, time = line.rstrip("\r\n").split(",")
            times.append(int(float(time)))
        except (ValueError, OverflowError):
            raise HarnessError(f"{path}:{line_no}: expected user,item,rating,time (4 fields, an "
                               f"integer time, no header line), got {line.strip()[:80]!r}.") from None
        users.append(user)
        items.append(item)
    return pd.DataFrame({"user": users, "item": items, "time": times})


def _item_row(record: dict) -> dict:
    """One item-table row: the mapped columns plus the raw record (stored key order) as `meta`."""
    row = {"raw_id": record["asin"]}
    for field, column in META_COLUMNS.items():
        row[column] = record.get(field, "")
    row["meta"] = record
    return row


def _meta_literal(line: str):
    """The record of one meta line; literals only: never eval() a downloaded file."""
    match = RELATED_FIELD.search(line)
    if match:
        head = line[: match.start()].rstrip()
        try:
            # The text before the key closes into a dict only if the key is not inside a string.
            ast.literal_eval(head.removesuffix(",") + "}")
            return ast.literal_eval(line[: match.start()] + line[match.end():])
        except (ValueError, SyntaxError):
            pass  # a text quoting "'related': {...}": parse the line whole
    return ast.literal_eval(line)


def read_meta(path: Path) -> pd.DataFrame:
    """Python-literal meta lines -> the item table (raw_id, title, ..., image, meta)."""
    rows = []
    for line_no, line in _numbered_lines(path):
        try:
            record = _meta_literal(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as err:
            raise HarnessError(f"{path}:{line_no}: not a Python-literal record ({type(err).__name__}); "
                               "meta lines look like {'asin': '...', 'title': '...'}: fix or "
                               "re-download the file.") from None
        if not isinstance(record, dict) or not isinstance(record.get("asin"), str):
            raise HarnessError(f"{path}:{line_no}: a meta record must be a dict with an 'asin' string; "
                               "fix the line or use the original file.")
        for field in DROPPED_META_FIELDS:
            record.pop(field, None)
        rows.append(_item_row(record))
    return pd.DataFrame(rows, columns=["raw_id", *META_COLUMNS.values(), "meta"])


def read_amazon_source(spec) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str], str]:
    """Raw interactions (user, item, time), the item table, {file name: sha256}, the meta path."""
    files = _source_files(spec)
    interactions = read_reviews(files["reviews"]) if "reviews" in files else read_ratings(files["ratings"])
    items = read_meta(files["meta"])
    hashes = {path.name: file_sha256(path) for path in files.values()}
    return interactions, items, hashes, str(files["meta"])
