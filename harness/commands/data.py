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
    add_common(prep)
    prep.set_defaults(func=prepare_main)

    stats = actions.add_parser("stats", help="Table 2 row plus tail counts, as a table and CSV")
    stats.add_argument("--csv", default=None, help="also write the row here (default: results/stats/)")
    add_common(stats)
    stats.set_defaults(func=stats_main)


def _dataset(args):
    from harness.config import parse_overrides
    from harness.data.prepare import load_dataset

    return load_dataset(args.dataset, args.profile, parse_overrides(args.overrides))


def prepare_main(args) -> int:
    from harness.config import parse_overrides
    from harness.data.prepare import prepare
    from harness.data.spec import dataset_spec

    spec = dataset_spec(args.dataset, args.profile, parse_overrides(args.overrides))
    dataset = prepare(spec, out_dir=args.out, force=args.force)
    print(f"prepared {dataset.name}: {dataset.n_users} users, {dataset.n_items} items -> {dataset.path}")
    return 0


def stats_main(args) -> int:
    from pathlib import Path

    from harness.config import results_dir
    from harness.data.stats import stats_row
    from harness.fileio import atomic_path

    dataset = _dataset(args)
    row = stats_row(dataset)
    print(row.to_string(index=False))
    out = Path(args.csv) if args.csv else results_dir() / "stats" / f"{dataset.name}.csv"
    with atomic_path(out) as tmp:
        row.to_csv(tmp, index=False)
    print(f"written: {out}")
    return 0
