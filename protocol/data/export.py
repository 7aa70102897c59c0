"""Export a prepared data set to MMRec's and RecBole's layouts, so the same split runs in those tools.

Users and items keep the data set's 0-based indices (the row order of every feature file).

- mmrec (put the folder at MMRec's data/<name>/): `<name>.inter`, tab-separated
  `userID itemID x_label` with x_label 0 train, 1 valid, 2 test; `image_feat.npy` and
  `text_feat.npy` copied from a feature set (required: MMRec's multimodal models read the
  files the YAML names); `<name>.yaml` for MMRec's src/configs/dataset/.
- recbole (put the folder at RecBole's dataset/<name>/): atomic files `<name>.inter`
  (`user_id:token item_id:token timestamp:float`) and `<name>.item`, plus the benchmark files
  `<name>.train.inter`, `<name>.valid.inter`, `<name>.test.inter`, and `<name>.yaml`.
  The timestamp is the position in the user's sequence, not the review time: review times tie,
  positions do not, so RecBole's leave-one-out by time (order TO, split LS) gives our split.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import yaml

from protocol.errors import HarnessError
from protocol.fileio import atomic_path, check_output_folder

FORMATS = ("mmrec", "recbole")
SPLITS = ("train", "valid", "test")
MMREC_LABELS = {split: label for label, split in enumerate(SPLITS)}
FEATURE_FILES = ("image_feat.npy", "text_feat.npy")


def _interactions(dataset) -> pd.DataFrame:
    """The stored rows (user, time order) with each row's position in its user's sequence."""
    rows = pd.read_csv(dataset.path / "interactions.csv", usecols=["user", "item", "split"])
    rows["position"] = rows.groupby("user", sort=False).cumcount()
    return rows


def _write_table(path: Path, table: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    return path


def _write_yaml(path: Path, config: dict, comment: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(f"# {comment}\n" + yaml.safe_dump(config, sort_keys=False))
    return path


def export_mmrec(dataset, out: Path, features: Path | None = None, force: bool = False) -> list[Path]:
    if features is None:
        raise HarnessError("MMRec's multimodal models load image_feat.npy and text_feat.npy named in the "
                           "exported YAML: pass --features FOLDER, a feature set of this data set "
                           "(`python -m harness extract --extractor base --dataset NAME` prints its folder).")
    from protocol.featureset import FeatureSet

    FeatureSet.load(features, dataset)  # refuses a feature set made for another data set
    check_out(out, "mmrec", dataset.name, force)
    rows = _interactions(dataset)
    inter = pd.DataFrame({"userID": rows["user"], "itemID": rows["item"],
                          "x_label": rows["split"].map(MMREC_LABELS)})
    written = [_write_table(out / f"{dataset.name}.inter", inter)]
    for name in FEATURE_FILES:
        with atomic_path(out / name) as tmp:
            shutil.copyfile(Path(features) / name, tmp)
        written.append(out / name)
    config = {"USER_ID_FIELD": "userID", "ITEM_ID_FIELD": "itemID",
              "inter_file_name": f"{dataset.name}.inter", "field_separator": "\t",
              "filter_out_cod_start_users": True,
              "vision_feature_file": FEATURE_FILES[0], "text_feature_file": FEATURE_FILES[1]}
    written.append(_write_yaml(out / f"{dataset.name}.yaml", config,
                               f"MMRec dataset config for {dataset.name} (content {dataset.content_hash})"))
    return written


def _atomic_text(value) -> str:
    """A field RecBole's reader takes literally: no tabs or newlines, no quote to open a field."""
    return " ".join(str(value).split()).replace('"', "'")


def _category_tokens(categories: str) -> str:
    """The first category path as a token sequence (spaces inside a category become '_')."""
    paths = json.loads(categories) if categories.startswith("[") else [[categories]]
    if not paths or not paths[0]:
        return ""
    first = paths[0] if isinstance(paths[0], list) else paths  # a single path, not a list of them
    return " ".join("_".join(str(c).split()) for c in first)


def export_recbole(dataset, out: Path, force: bool = False) -> list[Path]:
    check_out(out, "recbole", dataset.name, force)
    rows = _interactions(dataset)
    inter = pd.DataFrame({"user_id:token": rows["user"], "item_id:token": rows["item"],
                          "timestamp:float": rows["position"]})
    name = dataset.name
    written = [_write_table(out / f"{name}.inter", inter)]
    for split in SPLITS:
        written.append(_write_table(out / f"{name}.{split}.inter", inter[rows["split"] == split]))
    items = dataset.items
    written.append(_write_table(out / f"{name}.item", pd.DataFrame({
        "item_id:token": items["index"],
        "asin:token": items["asin"].map(_atomic_text),
        "title:token_seq": items["title"].map(_atomic_text),
        "brand:token": items["brand"].map(_atomic_text),
        "categories:token_seq": items["categories"].map(_category_tokens),
        "price:float": pd.to_numeric(items["price"], errors="coerce"),
    })))
    config = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
              "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
              "eval_args": {"order": "TO", "split": {"LS": "valid_and_test"}, "group_by": "user"}}
    written.append(_write_yaml(out / f"{name}.yaml", config,
                               f"RecBole dataset config for {name} (content {dataset.content_hash}); "
                               "general models may use benchmark_filename: [train, valid, test] instead"))
    return written


def export_names(fmt: str, name: str) -> list[str]:
    """The files an export of data set `name` in format `fmt` writes."""
    if fmt == "mmrec":
        return [f"{name}.inter", *FEATURE_FILES, f"{name}.yaml"]
    return [f"{name}.inter", *(f"{name}.{split}.inter" for split in SPLITS), f"{name}.item", f"{name}.yaml"]


def check_out(out: Path, fmt: str, name: str, force: bool) -> None:
    """Before anything is written: `out` must be a folder, and files of the same names (an earlier
    export, or a user's own) are replaced only with --force; other files there are never touched."""
    check_output_folder(out, "--out")
    there = [n for n in export_names(fmt, name) if (out / n).exists()]
    if there and not force:
        raise HarnessError(f"--out {out} already holds {there[0]}; add --force to replace the files of an "
                           "earlier export (other files there are kept), or choose another --out.")


def export(dataset, fmt: str, out: str | Path, features: str | Path | None = None,
           force: bool = False) -> list[Path]:
    """Write `dataset` in format `fmt` into folder `out`; returns the files written."""
    out = Path(out)
    if fmt == "mmrec":
        return export_mmrec(dataset, out, Path(features) if features else None, force)
    if fmt == "recbole":
        if features:
            raise HarnessError("RecBole's atomic files hold no feature arrays; drop --features or "
                               "use --format mmrec.")
        return export_recbole(dataset, out, force)
    raise HarnessError(f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}.")
