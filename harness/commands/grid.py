"""grid: run a model's hyper-parameter grid on one (extractor, data set), pick on validation."""
from __future__ import annotations

from harness.commands import add_address, add_common
from harness.executors import EXECUTORS
from protocol.config import positive_int

ORDER = 25


def add_parser(sub) -> None:
    from extractors.registry import EXTRACTORS  # light: names only (plugins' entry points, unimported)
    from recommenders import MODELS

    p = sub.add_parser("grid", help="run a model's grid, pick the winner on validation, write a summary row",
                       description="Expand configs/models/<model>.yaml `grid:` (override an axis with "
                                   "grid.KEY=[v1,v2]; other key=value pairs apply to every point), skip "
                                   "finished runs, pick the winner on validation only, and write one row "
                                   "to results/grid_summary.csv.")
    p.add_argument("--model", "-m", required=True, help=MODELS.listing())
    p.add_argument("--extractor", "-e", default="base", help=f"{EXTRACTORS.listing()} (default base)")
    p.add_argument("--executor", default="local", choices=EXECUTORS, help="local (default) | ray")
    p.add_argument("--workers", type=positive_int, default=1, help="parallel runs (one GPU each when GPUs exist)")
    add_address(p)
    add_common(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from harness.grid import run_grid
    from protocol.config import parse_overrides

    out = run_grid(args.model, args.dataset, args.extractor, args.profile, parse_overrides(args.overrides),
                   executor=args.executor, workers=args.workers, address=args.address)
    row = out["row"]
    print(f"\n{out['points'].to_string(index=False, float_format=lambda v: f'{v:.4f}')}")
    print(f"\nwinner on validation {row['valid_metric']} = {row['valid_value']:.4f}: {row['chosen']} "
          f"(run {row['run_key']})")
    for protocol in ("sampled", "full"):
        cells = [f"{group} HR@10 {row[key]:.4f} NDCG@10 {row[key.replace('hit', 'ndcg')]:.4f}"
                 for group in ("overall", "tail")
                 if (key := f"test_{protocol}_{group}_hit@10") in row]
        if cells:
            print(f"test ({protocol}): " + "; ".join(cells))
    print(f"summary: {out['summary']}")
    return 0
