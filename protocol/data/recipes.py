"""Filtering recipes from raw interactions (user, item, time) to the data set's interactions.

- llmemb: the paper's (authors' code): one pass dropping interactions whose user or item has
  fewer than `min_count` interactions in the raw counts, then time order, repeated items
  removed per user, and users with fewer than `min_user_len` interactions dropped.
- kcore: the classic iterative k-core (S3-Rec/P5): repeat the filter until every user and item
  has at least `min_count` interactions.
- none: keep everything (already-filtered sources such as the bundled subsets).
"""
from __future__ import annotations

import pandas as pd

from protocol.errors import HarnessError

RECIPES = ("llmemb", "kcore", "none")


def _dedupe_in_time_order(df: pd.DataFrame) -> pd.DataFrame:
    df = df.sort_values(["user", "time"], kind="stable")
    return df.drop_duplicates(["user", "item"], keep="first")


def _drop_short_users(df: pd.DataFrame, min_len: int) -> pd.DataFrame:
    lengths = df.groupby("user", sort=False)["item"].transform("size")
    return df[lengths >= min_len]


def _kcore(df: pd.DataFrame, k: int) -> pd.DataFrame:
    while True:
        user_n = df.groupby("user", sort=False)["item"].transform("size")
        item_n = df.groupby("item", sort=False)["user"].transform("size")
        keep = (user_n >= k) & (item_n >= k)
        if keep.all():
            return df
        df = df[keep]


def apply_recipe(df: pd.DataFrame, recipe: str, min_count: int, min_user_len: int) -> pd.DataFrame:
    """`df` has columns user, item, time (any order); returns the kept rows in (user, time) order."""
    if recipe == "llmemb":
        user_n = df.groupby("user", sort=False)["item"].transform("size")
        item_n = df.groupby("item", sort=False)["user"].transform("size")
        df = _dedupe_in_time_order(df[(user_n >= min_count) & (item_n >= min_count)])
    elif recipe == "kcore":
        df = _kcore(_dedupe_in_time_order(df), min_count)
    elif recipe == "none":
        df = _dedupe_in_time_order(df)
    else:
        raise HarnessError(f"unknown recipe '{recipe}'; use one of {', '.join(RECIPES)}.")
    return _drop_short_users(df, min_user_len).reset_index(drop=True)
