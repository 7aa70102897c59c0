"""The raw Amazon Reviews 2023 files of one category -> raw interactions and the item table.

- reviews: `<Category>.jsonl.gz`; JSON lines with user_id, parent_asin and timestamp (ms).
- meta: `meta_<Category>.jsonl.gz`; JSON lines keyed by parent_asin (title, features,
  description, categories, images, price, store, ...).

Items are keyed by parent_asin (reviews of colour or size variants share their parent's meta).
Streaming, gzip detection and the file:line errors are amazon.py's, shared with the 2014 release.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from protocol.data.amazon import Release, meta_records, read_reviews, read_source

# The per-category files of the 2023 release (Hou et al.), as spelled in their file names.
CATEGORIES = (
    "All_Beauty", "Amazon_Fashion", "Appliances", "Arts_Crafts_and_Sewing", "Automotive",
    "Baby_Products", "Beauty_and_Personal_Care", "Books", "CDs_and_Vinyl",
    "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry", "Digital_Music", "Electronics",
    "Gift_Cards", "Grocery_and_Gourmet_Food", "Handmade_Products", "Health_and_Household",
    "Health_and_Personal_Care", "Home_and_Kitchen", "Industrial_and_Scientific", "Kindle_Store",
    "Magazine_Subscriptions", "Movies_and_TV", "Musical_Instruments", "Office_Products",
    "Patio_Lawn_and_Garden", "Pet_Supplies", "Software", "Sports_and_Outdoors",
    "Subscription_Boxes", "Tools_and_Home_Improvement", "Toys_and_Games", "Video_Games", "Unknown",
)
RELEASE = Release(
    source="amazon2023", label="Amazon 2023", categories=CATEGORIES,
    # A reviews file is named by its category alone, so any other name (my_reviews.jsonl) is
    # taken without a category check; a meta_ name must name a known category.
    patterns={"reviews": re.compile(rf"^(?P<cat>{'|'.join(CATEGORIES)})\.jsonl(?:\.gz)?$"),
              "meta": re.compile(r"^meta_(?P<cat>.+?)\.jsonl(?:\.gz)?$")},
    kinds=("reviews",), meta_example="meta_<Category>.jsonl.gz",
    download_hint="download it from the Amazon Reviews 2023 release (amazon-reviews-2023.github.io)")
REVIEW_KEYS = ("user_id", "parent_asin", "timestamp")
# URL lists (a URL is not item text: the chosen image is the `image` column) and asin lists (as
# 2014's `related`) are left out of the stored record, which the text prompts read key by key.
DROPPED_META_FIELDS = ("images", "videos", "bought_together")
ITEM_COLUMNS = ("title", "brand", "categories", "price", "description", "image")


def _text(value) -> str:
    """A 2023 text field (a list of paragraphs, a string or null) as one string."""
    if isinstance(value, list):
        return " ".join(str(v).strip() for v in value if str(v).strip())
    return "" if value is None else str(value)


def main_image(images) -> str:
    """The MAIN variant's `large` image, else the first `large` one, else ''."""
    candidates = [i for i in images or [] if isinstance(i, dict) and isinstance(i.get("large"), str) and i["large"]]
    main = [i for i in candidates if i.get("variant") == "MAIN"]
    return (main or candidates or [{"large": ""}])[0]["large"]


def item_row(record: dict) -> dict:
    """One item-table row (the 2014 columns) plus the record without its URL and asin lists."""
    categories = record.get("categories") or []
    row = {
        "raw_id": record["parent_asin"],
        "title": _text(record.get("title")),
        "brand": _text(record.get("store")),
        # 2023 categories are one flat path; the item table holds a list of paths (2014's form).
        "categories": [list(map(str, categories))] if isinstance(categories, list) and categories else [],
        "price": "" if record.get("price") is None else record["price"],
        "description": _text(record.get("description")),
        "image": main_image(record.get("images")),
    }
    row["meta"] = {k: v for k, v in record.items() if k not in DROPPED_META_FIELDS}
    return row


def read_meta(path: Path) -> pd.DataFrame:
    """JSON meta lines -> the item table (raw_id = parent_asin, title, ..., image, meta)."""
    rows = [item_row(r) for r in meta_records(path, json.loads, "JSON", "parent_asin", RELEASE.download_hint)]
    return pd.DataFrame(rows, columns=["raw_id", *ITEM_COLUMNS, "meta"])


def read_amazon2023_source(spec) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str], str]:
    """Raw interactions (user, parent_asin, time in ms), the item table, {file name: sha256}, the meta path."""
    return read_source(spec, RELEASE, lambda _kind, path: read_reviews(path, REVIEW_KEYS, RELEASE.download_hint),
                       read_meta)
