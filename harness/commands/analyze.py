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
    from pathlib import Path

    from harness.config import parse_overrides, results_dir
    from harness.data.prepare import load_dataset
    from harness.errors import HarnessError
    from harness.fileio import atomic_path
    from extractors.sda.gradients import gradient_conflict
    from extractors.store import make_extractor

    if args.batches < 1:
        raise HarnessError(f"--batches {args.batches} must be at least 1.")
    dataset = load_dataset(args.dataset, args.profile)
    overrides = parse_overrides(args.overrides)
    settings = {adapter: make_extractor(name, dataset, args.profile, overrides).settings()
                for adapter, name in (("lora", "sda-lora"), ("moda", "sda"))}
    table = gradient_conflict(dataset, settings, args.batches)
    print(table.drop(columns=["dataset", "adapter_key"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    out = Path(args.csv) if args.csv else results_dir() / "analysis" / f"gradients-{dataset.name}.csv"
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    print(f"written: {out}")
    return 0
