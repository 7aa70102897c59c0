"""diagnose: how aligned the image and text features of one or more extractors are."""
from __future__ import annotations

from harness.commands import add_common

ORDER = 16


def add_parser(sub) -> None:
    p = sub.add_parser("diagnose", help="modality alignment of feature sets -> results/diagnostics/",
                       description="Matched vs random image-text cosine, modality gap and image->text "
                                   "recall@1/@10 of each extractor's features (extracted when missing).")
    p.add_argument("--extractor", "-e", action="append", required=True,
                   help="an extractor; repeat for a table across extractors")
    p.add_argument("--csv", default=None, help="write here (default: results/diagnostics/<dataset>.csv)")
    add_common(p)  # key=value overrides apply to every extractor's settings
    p.set_defaults(func=main)


def main(args) -> int:
    from protocol.config import parse_overrides

    table, out = diagnostics_table(args.dataset, args.extractor, args.profile, parse_overrides(args.overrides), args.csv)
    print(table.drop(columns=["feature_key", "data_hash"]).to_string(
        index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"written: {out}")
    return 0


def diagnostics_table(dataset_name: str, extractors: list[str], profile: str | None, overrides: dict,
                      csv: str | None = None):
    """Alignment diagnostics of each extractor's features (extracted when missing), written to `csv`
    or results/diagnostics/<data set>.csv: (table, path)."""
    from pathlib import Path

    import pandas as pd

    from extractors.alignment import diagnose
    from extractors.registry import EXTRACTORS
    from extractors.store import load_or_extract
    from protocol.config import results_dir
    from protocol.data.prepare import load_dataset
    from protocol.fileio import atomic_path, check_output_file, csv_starts_with

    for name in extractors:
        EXTRACTORS.check(name)
    if csv:  # before any work: a folder, or a file the harness did not write, is refused
        check_output_file(Path(csv), "--csv", lambda p: csv_starts_with(p, ("dataset", "extractor", "feature_key")))
    dataset = load_dataset(dataset_name, profile)
    rows = []
    for name in extractors:
        features = load_or_extract(dataset, name, profile, overrides)
        rows.append({"dataset": dataset.name, "extractor": name, "feature_key": features.key,
                     "data_hash": dataset.content_hash, **diagnose(features)})
    table = pd.DataFrame(rows)
    out = Path(csv) if csv else results_dir() / "diagnostics" / f"{dataset.name}.csv"
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    return table, out
