"""data: prepare, stats, export and images for data sets."""
from __future__ import annotations

from harness.commands import add_common

ORDER = 10


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="prepare data sets, print statistics, export, fetch images")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    prep = actions.add_parser("prepare", help="raw files -> dataset directory (split, negatives, tail)")
    prep.add_argument("--out", default=None, help="write here instead of artifacts/datasets/")
    prep.add_argument("--force", action="store_true", help="prepare again even if it exists")
    prep.add_argument("--name", default=None,
                      help="the data set's name when --dataset is a folder of sequences.txt + items.tsv "
                           "(default: the folder's name)")
    add_common(prep)
    prep.set_defaults(func=prepare_main)

    stats = actions.add_parser("stats", help="Table 2 row plus tail counts, as a table and CSV")
    stats.add_argument("--csv", default=None, help="also write the row here (default: results/stats/)")
    add_common(stats)
    stats.set_defaults(func=stats_main)

    export = actions.add_parser("export", help="write the data set in MMRec's or RecBole's file layout")
    export.add_argument("--format", required=True, choices=("mmrec", "recbole"), dest="fmt",
                        help="mmrec: <name>.inter (userID itemID x_label); recbole: atomic files")
    export.add_argument("--out", required=True, help="folder for the files (e.g. MMRec's data/<name>)")
    export.add_argument("--force", action="store_true",
                        help="replace the files of an earlier export in --out (other files are kept)")
    export.add_argument("--features", default=None,
                        help="mmrec (required): a feature set folder whose image_feat.npy/text_feat.npy to copy")
    add_common(export)
    export.set_defaults(func=export_main)

    images = actions.add_parser("images", help="download item images from their URLs (resumable)")
    images.add_argument("--workers", type=int, default=8, help="parallel downloads (default: 8)")
    images.add_argument("--retries", type=int, default=3, help="extra tries per image (default: 3)")
    images.add_argument("--timeout", type=float, default=20.0, help="seconds per request (default: 20)")
    add_common(images)
    images.set_defaults(func=images_main)


def _dataset(args):
    from protocol.config import parse_overrides
    from protocol.data.prepare import load_dataset

    return load_dataset(args.dataset, args.profile, parse_overrides(args.overrides))


def prepare_main(args) -> int:
    from protocol.config import parse_overrides
    from protocol.data.prepare import prepare
    from protocol.data.spec import dataset_spec, folder_spec, is_sequences_folder
    from protocol.errors import HarnessError

    overrides = parse_overrides(args.overrides)
    if is_sequences_folder(args.dataset):
        spec = folder_spec(args.dataset, args.name, overrides)
    elif args.name:
        raise HarnessError(f"--name names a folder's data set; '{args.dataset}' is not a folder with sequences.txt.")
    else:
        spec = dataset_spec(args.dataset, args.profile, overrides)
    dataset = prepare(spec, out_dir=args.out, force=args.force)
    print(f"prepared {dataset.name}: {dataset.n_users} users, {dataset.n_items} items -> {dataset.path}")
    return 0


def stats_main(args) -> int:
    from pathlib import Path

    from protocol.config import results_dir
    from protocol.data.stats import stats_row
    from protocol.fileio import atomic_path, check_output_file

    if args.csv:  # before any work: a folder, or a file the harness did not write, is refused
        check_output_file(Path(args.csv), "--csv", is_stats_csv)
    dataset = _dataset(args)
    row = stats_row(dataset)
    print(row.to_string(index=False))
    out = Path(args.csv) if args.csv else results_dir() / "stats" / f"{dataset.name}.csv"
    with atomic_path(out) as tmp:
        row.to_csv(tmp, index=False)
    print(f"written: {out}")
    return 0


def is_stats_csv(path) -> bool:
    """Whether `path` is a row `data stats` wrote (its header), so --csv may replace it."""
    from protocol.data.stats import COLUMNS
    from protocol.fileio import csv_starts_with

    return csv_starts_with(path, COLUMNS)


def export_main(args) -> int:
    from pathlib import Path

    from protocol.data.export import export
    from protocol.fileio import check_output_folder

    check_output_folder(Path(args.out), "--out")  # before any work (export checks its files again)
    dataset = _dataset(args)
    written = export(dataset, args.fmt, args.out, args.features, args.force)
    print(f"exported {dataset.name} ({args.fmt}): {', '.join(p.name for p in written)} -> {args.out}")
    return 0


def images_main(args) -> int:
    from protocol.data.images import REPORT_CSV, FetchSettings, download_images

    dataset = _dataset(args)
    counts = download_images(dataset, args.workers, FetchSettings(args.retries, args.timeout))
    print(f"images of {dataset.name}: {counts['downloaded']} downloaded, {counts['already_present']} "
          f"already there, {counts['failed']} failed, {counts['no_url']} without URL; "
          f"{counts['present']} of {counts['items']} items have an image.")
    if counts["missing"]:
        print(f"missing: {dataset.path / REPORT_CSV} (run again to retry the failed ones)")
    return 0
