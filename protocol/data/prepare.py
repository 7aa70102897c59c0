"""prepare: a data set spec -> its dataset directory under artifacts/datasets/.

The directory is named by the spec's settings and source paths; the sources' content is checked
on every load (their hashes are in meta.json), so an edited source file is reported as a stale
data set instead of being silently ignored.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from protocol.config import artifacts_dir
from protocol.data.build import FORMAT_VERSION, build_dataset, is_dataset_dir
from protocol.data.dataset import Dataset
from protocol.data.recipes import apply_recipe
from protocol.data.sequences import read_sequences_source
from protocol.data.spec import RAW_SOURCES, DatasetSpec, dataset_spec
from protocol.errors import HarnessError
from protocol.fileio import check_output_folder, file_sha256, stable_key, unreadable


def source_files(spec: DatasetSpec) -> list[Path]:
    """The files a data set is prepared from: what meta.json's `sources` holds hashes of."""
    if spec.source == "sequences":
        folder = spec.resolve(spec.path)
        return [folder / "sequences.txt", folder / "items.tsv"]
    if spec.source in RAW_SOURCES:
        return [spec.resolve(p) for p in (spec.reviews or spec.ratings, spec.meta) if p]
    return []


def check_sources(spec: DatasetSpec, dataset: Dataset) -> None:
    """Refuse a prepared data set whose source files changed since it was prepared.

    Only files modified after the preparation (meta.json's time) are hashed again, as make
    decides what to rebuild: hashing the raw Amazon files on every load would cost seconds.
    """
    prepared = (dataset.path / "meta.json").stat().st_mtime_ns
    recorded = dataset.meta.get("sources", {})
    for path in source_files(spec):
        if path.name not in recorded or not path.is_file() or path.stat().st_mtime_ns < prepared:
            continue
        if file_sha256(path) != recorded[path.name]:
            raise HarnessError(
                f"{dataset.path} is stale: {path} changed after the data set was prepared from it; "
                f"prepare it again with {dataset.rebuild}.")


def _read_source(spec: DatasetSpec) -> tuple[pd.DataFrame, pd.DataFrame, dict, str]:
    """Raw interactions (user, item, time), item table, source file hashes, item-table file."""
    if spec.source == "sequences":
        folder = spec.resolve(spec.path)
        users, histories, items = read_sequences_source(folder)
        inter = pd.DataFrame({
            "user": [u for u, h in zip(users, histories) for _ in h],
            "item": [i for h in histories for i in h],
            "time": [t for h in histories for t in range(len(h))],
        })
        files = source_files(spec)
        return inter, items, {p.name: file_sha256(p) for p in files}, str(folder / "items.tsv")
    if spec.source == "amazon":
        from protocol.data.amazon import read_amazon_source

        return read_amazon_source(spec)
    if spec.source == "amazon2023":
        from protocol.data.amazon2023 import read_amazon2023_source

        return read_amazon2023_source(spec)
    raise HarnessError(f"unknown source '{spec.source}' in data set '{spec.name}'; use sequences, amazon or amazon2023.")


def dataset_dir(spec: DatasetSpec) -> Path:
    # The domain is in meta.json (the prompts read it), so a new domain is a new directory.
    # The format version too: a harness that builds data sets differently builds a new directory.
    key = stable_key({"format": FORMAT_VERSION, "settings": spec.recipe_settings() | {"min_count": spec.min_count},
                      "domain": spec.domain,
                      "inputs": [spec.path, spec.reviews, spec.ratings, spec.meta]}, 10)
    return artifacts_dir() / "datasets" / f"{spec.name}-{key}"


def _check_out(spec: DatasetSpec, out_dir: Path) -> None:
    """Refuse a user-given --out whose replacement would lose files the harness did not write: a
    file, a folder of other files, the source folder or anything inside or around it."""
    out = out_dir.expanduser().resolve()
    for source in source_files(spec):
        folder = source.resolve().parent
        if out == folder or folder in out.parents or out in folder.parents:
            where = "is the source folder" if out == folder else (
                "is inside the source folder" if folder in out.parents else "holds the source folder")
            raise HarnessError(f"--out {out_dir} {where} {folder}; the harness never writes into its "
                               "sources: give --out a folder outside it.")
    check_output_folder(out_dir, "--out")  # a file, or a path under one
    if out.is_dir() and any(out.iterdir()) and not is_dataset_dir(out):
        example = sorted(p.name for p in out.iterdir())[0]
        raise HarnessError(f"--out {out_dir} holds files the harness did not write (e.g. '{example}'); give "
                           "--out a new or empty folder (--force replaces only a prepared data set).")


def prepare(spec: DatasetSpec, out_dir: Path | None = None, force: bool = False) -> Dataset:
    rebuild = spec.prepare_command(out_dir)
    if out_dir:
        _check_out(spec, Path(out_dir))
    out_dir = Path(out_dir) if out_dir else dataset_dir(spec)
    if (out_dir / "meta.json").exists() and not force:
        dataset = Dataset(out_dir, rebuild)
        # An explicit --out may hold another preparation: never hand it back as this one.
        if dataset.name != spec.name or dataset.meta["recipe"] != spec.recipe_settings():
            raise HarnessError(f"{out_dir} holds {dataset.name} prepared with other settings "
                               f"({dataset.meta['recipe']}); add --force to replace it or choose another --out.")
        check_sources(spec, dataset)
        return dataset
    inter, items, hashes, items_where = _read_source(spec)
    users = inter["user"].nunique()
    inter = apply_recipe(inter, spec.recipe, spec.min_count, spec.min_user_len)
    dropped = users - inter["user"].nunique()
    if dropped:  # said, never silent: the data set has fewer users than the source
        print(f"{spec.name}: dropped {dropped} of {users} users left with fewer than {spec.min_user_len} "
              f"interactions by recipe '{spec.recipe}' (min_count {spec.min_count}, min_user_len {spec.min_user_len}).")
    render = None
    if spec.images == "render":
        from protocol.data.render import render_item_images as render
    build_dataset(out_dir, inter, items, spec, hashes, items_where, render_images=render, rebuild=rebuild)
    return Dataset(out_dir, rebuild)


def load_dataset(name_or_path: str, profile: str | None = None, overrides: dict | None = None) -> Dataset:
    """A prepared directory path, or a configured data set name (prepared on first use)."""
    path = Path(name_or_path)
    try:
        prepared = (path / "meta.json").exists()
    except OSError as err:  # a folder this process may not enter
        raise unreadable(path, err) from None
    if prepared:
        return Dataset(path)
    return prepare(dataset_spec(name_or_path, profile, overrides))
