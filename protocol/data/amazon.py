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
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from protocol.errors import HarnessError, did_you_mean
from protocol.fileio import file_sha256

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


@dataclass(frozen=True)
class Release:
    """What differs between the Amazon releases' files: the config's source name, the
    categories, how file names declare them, which interaction files exist, where to download."""
    source: str
    label: str
    categories: tuple[str, ...]
    patterns: dict[str, re.Pattern]
    kinds: tuple[str, ...]  # the interaction files a config may name (exactly one is used)
    meta_example: str
    download_hint: str


RELEASE_2014 = Release("amazon", "Amazon 2014", CATEGORIES, NAME_PATTERNS, ("reviews", "ratings"),
                       "meta_<Category>.json.gz", DOWNLOAD_HINT)
REVIEW_KEYS = ("reviewerID", "asin", "unixReviewTime")
# Meta fields -> item-table columns (DESIGN contract 1); `related` (also-bought lists) is bulky
# and unused, so it is dropped from the stored record too.
META_COLUMNS = {"title": "title", "brand": "brand", "categories": "categories", "price": "price",
                "description": "description", "imUrl": "image"}
DROPPED_META_FIELDS = ("related",)
# `related` holds only lists of asins (no braces inside), so this matches all of it. Cutting it out
# before literal_eval makes meta parsing about 3x faster on lines with ~90 related asins (measured).
RELATED_FIELD = re.compile(r"'related': \{[^{}]*\}(?:, )?")


def _category(kind: str, path: Path, release: Release = RELEASE_2014) -> str | None:
    """The category a file's name declares; an unknown one is refused with the closest known."""
    match = release.patterns[kind].match(path.name)
    if not match:
        return None
    cat = match["cat"]
    if cat not in release.categories:
        raise HarnessError(f"{kind} file {path.name} names unknown {release.label} category '{cat}'."
                           f"{did_you_mean(cat, release.categories)} Known: {', '.join(release.categories)}.")
    return cat


def source_files(spec, release: Release = RELEASE_2014) -> dict[str, Path]:
    """{interaction kind: path, 'meta': path}, checked for names, agreement and existence."""
    given = [k for k in ("reviews", "ratings") if getattr(spec, k)]
    if len(given) != 1 or given[0] not in release.kinds:
        settings = " or ".join(f"{k}=..." for k in release.kinds)
        raise HarnessError(f"data set '{spec.name}' (source {release.source}) needs exactly one of {settings}; "
                           "set it in its config and leave the other files empty.")
    if not spec.meta:
        raise HarnessError(f"data set '{spec.name}' (source {release.source}) has no meta file; set "
                           f"meta={release.meta_example} in its config.")
    kind = given[0]
    files = {kind: spec.resolve(getattr(spec, kind)), "meta": spec.resolve(spec.meta)}
    categories = {k: _category(k, p, release) for k, p in files.items()}
    if None not in categories.values() and len(set(categories.values())) > 1:
        raise HarnessError(f"the {kind} file is {categories[kind]} but the meta file is "
                           f"{categories['meta']}; use the meta file of the same category.")
    for k, path in files.items():
        if not path.is_file():
            raise HarnessError(f"{k} file {path.name} is missing: expected at {path}; "
                               f"{release.download_hint} or fix the {k} path of data set '{spec.name}'.")
    return files


def _numbered_lines(path: Path, hint: str = DOWNLOAD_HINT):
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
                           f"the file is truncated or corrupt: {hint} again.") from None


def read_reviews(path: Path, keys: tuple[str, str, str] = REVIEW_KEYS, hint: str = DOWNLOAD_HINT) -> pd.DataFrame:
    """JSON-lines reviews -> DataFrame[user, item, time] in file order; `keys`: the review's
    fields holding the user, the item and the (integer) time."""
    users, items, times = [], [], []
    for line_no, line in _numbered_lines(path, hint):
        try:
            review = json.loads(line)
            user, item, time = (review[k] for k in keys)
            times.append(int(time))
        except json.JSONDecodeError as err:
            raise HarnessError(f"{path}:{line_no}: not a JSON line ({err.msg}, column {err.colno}); "
                               "reviews files hold one JSON object a line: fix or re-download it.") from None
        except (KeyError, TypeError, ValueError, OverflowError):
            raise HarnessError(f"{path}:{line_no}: a review needs {', '.join(keys)} "
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


def meta_records(path: Path, parse, form: str, key: str, hint: str = DOWNLOAD_HINT):
    """The dict record of each meta line, parsed by `parse` (`form` names the line format in
    errors); a line that does not parse, or has no `key` string, is refused with file:line."""
    for line_no, line in _numbered_lines(path, hint):
        try:
            record = parse(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as err:  # JSONDecodeError too
            raise HarnessError(f"{path}:{line_no}: not a {form} record ({type(err).__name__}); "
                               f"meta lines look like {{{key!r}: '...', 'title': '...'}}: fix or "
                               "re-download the file.") from None
        if not isinstance(record, dict) or not isinstance(record.get(key), str):
            raise HarnessError(f"{path}:{line_no}: a meta record must be a dict with a '{key}' string; "
                               "fix the line or use the original file.")
        yield record


def read_meta(path: Path) -> pd.DataFrame:
    """Python-literal meta lines -> the item table (raw_id, title, ..., image, meta)."""
    rows = []
    for record in meta_records(path, _meta_literal, "Python-literal", "asin"):
        for field in DROPPED_META_FIELDS:
            record.pop(field, None)
        rows.append(_item_row(record))
    return pd.DataFrame(rows, columns=["raw_id", *META_COLUMNS.values(), "meta"])


def read_source(spec, release: Release, read_interactions, read_items):
    """Raw interactions (user, item, time), the item table, {file name: sha256}, the meta path;
    `read_interactions(kind, path)` and `read_items(path)` read one release's formats."""
    files = source_files(spec, release)
    kind = next(k for k in files if k != "meta")
    interactions = read_interactions(kind, files[kind])
    items = read_items(files["meta"])
    hashes = {path.name: file_sha256(path) for path in files.values()}
    return interactions, items, hashes, str(files["meta"])


def read_amazon_source(spec) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str], str]:
    """The 2014 release: reviews (JSON) or ratings (CSV), and Python-literal meta."""
    return read_source(spec, RELEASE_2014,
                       lambda kind, path: read_reviews(path) if kind == "reviews" else read_ratings(path),
                       read_meta)
