"""figure: the paper's figures that are not tables of runs: gradient conflict and modality gap."""
from __future__ import annotations

from harness.commands import add_common

ORDER = 42
FIGURES = ("gradients", "modality-gap")


def add_parser(sub) -> None:
    p = sub.add_parser("figure", help="gradient-conflict and modality-gap figures -> results/figures/",
                       description="gradients: cosine of image-only vs text-only gradients, LoRA vs MoDA, "
                                   "beside the paper's (adapters trained when missing). modality-gap: the "
                                   "alignment diagnostics of every extractor (features extracted when missing). "
                                   "Figures 3 and 4 are plans: `python -m harness table figure3`.")
    p.add_argument("name", choices=FIGURES, help="which figure")
    p.add_argument("--extractors", nargs="+", default=["base", "clip", "qwenvl", "sda"],
                   help="modality-gap: the extractors to compare (default: base clip qwenvl sda)")
    p.add_argument("--batches", type=int, default=10, help="gradients: item batches to average over (default 10)")
    add_common(p)
    p.set_defaults(func=main)


def main(args) -> int:
    import pandas as pd

    from harness.tables import figures
    from harness.tables.build import PAPER_DIR
    from harness.tables.report import provenance_line
    from protocol.config import parse_overrides, profile_name, results_dir
    from protocol.errors import HarnessError

    overrides = parse_overrides(args.overrides)
    profile = profile_name(args.profile)
    out = results_dir() / "figures"
    if args.name == "gradients":
        from harness.commands.analyze import gradient_table

        if args.batches < 1:
            raise HarnessError(f"--batches {args.batches} must be at least 1.")
        table, csv = gradient_table(args.dataset, profile, overrides, args.batches)
        paper = pd.read_csv(PAPER_DIR / "gradients.csv")
        footer = provenance_line(profile, {table["dataset"].iloc[0]: table["data_hash"].iloc[0]},
                                 f"adapters {', '.join(table['adapter_key'].unique())}")
        paths = figures.plot_gradients(table, paper, footer, out / f"gradients-{args.dataset}")
    else:
        from harness.commands.diagnose import diagnostics_table

        table, csv = diagnostics_table(args.dataset, args.extractors, profile, overrides)
        footer = provenance_line(profile, {table["dataset"].iloc[0]: table["data_hash"].iloc[0]},
                                 f"features {', '.join(table['feature_key'])}")
        paths = figures.plot_modality_gap(table, footer, out / f"modality-gap-{args.dataset}")
    print(f"data: {csv}")
    for path in paths:
        print(f"written: {path}")
    return 0
