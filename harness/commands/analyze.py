"""analyze: analyses of the SDA adapters (gradient conflict between modalities)."""
from __future__ import annotations

from harness.commands import add_common

ORDER = 70


def add_parser(sub) -> None:
    p = sub.add_parser("analyze", help="analyses of the SDA adapters")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    grad = actions.add_parser(
        "gradients", help="cosine of image-only vs text-only CMSA gradients, LoRA vs MoDA",
        description="For the trained sda-lora and sda adapters (trained first when missing), the "
                    "cosine between the image-only and text-only CMSA gradients on lora_B of q_proj and "
                    "k_proj in the last decoder layer (MoDA: first expert), averaged over item batches.")
    grad.add_argument("--batches", type=int, default=10, help="item batches to average over (default 10)")
    grad.add_argument("--csv", default=None, help="write here (default: results/analysis/gradients-<D>.csv)")
    add_common(grad)
    grad.set_defaults(func=gradients_main)


def gradients_main(args) -> int:
    from protocol.config import parse_overrides
    from protocol.errors import HarnessError

    if args.batches < 1:
        raise HarnessError(f"--batches {args.batches} must be at least 1.")
    table, out = gradient_table(args.dataset, args.profile, parse_overrides(args.overrides), args.batches, args.csv)
    print(table.drop(columns=["dataset", "adapter_key"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"written: {out}")
    return 0


def gradient_table(dataset_name: str, profile: str | None, overrides: dict, batches: int, csv: str | None = None):
    """The LoRA vs MoDA gradient conflict of a data set's adapters (trained first when missing),
    written to `csv` or results/analysis/gradients-<data set>.csv: (table, path)."""
    from pathlib import Path

    from extractors.sda.gradients import gradient_conflict
    from extractors.store import make_extractor
    from protocol.config import results_dir
    from protocol.data.prepare import load_dataset
    from protocol.fileio import atomic_path, check_output_file, csv_starts_with

    if csv:  # before any work: a folder, or a file the harness did not write, is refused
        check_output_file(Path(csv), "--csv", lambda p: csv_starts_with(p, ("dataset", "data_hash", "adapter")))
    dataset = load_dataset(dataset_name, profile)
    settings = {adapter: make_extractor(name, dataset, profile, overrides).settings()
                for adapter, name in (("lora", "sda-lora"), ("moda", "sda"))}
    table = gradient_conflict(dataset, settings, batches)
    out = Path(csv) if csv else results_dir() / "analysis" / f"gradients-{dataset.name}.csv"
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    return table, out
