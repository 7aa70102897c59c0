"""run: train and evaluate one (model, extractor, data set) configuration."""
from __future__ import annotations

from harness.commands import add_common

ORDER = 20


def add_parser(sub) -> None:
    from extractors.registry import EXTRACTORS  # light: names only (plugins' entry points, unimported)
    from recommenders import MODELS

    p = sub.add_parser("run", help="train one recommender with one feature set and write results/",
                       description="Train one recommender on one data set with one extractor's "
                                   "features; print overall and tail HR@10/NDCG@10 and where the CSV went.")
    p.add_argument("--model", "-m", required=True, help=MODELS.listing())
    p.add_argument("--extractor", "-e", default="base", help=f"{EXTRACTORS.listing()} (default base)")
    p.add_argument("--force", action="store_true", help="re-run even if this run key is finished")
    p.add_argument("--device", default=None, help="cpu | cuda | cuda:N (default: auto)")
    add_common(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from harness.runner import RunSpec, check_known, execute, headline
    from protocol.config import parse_overrides

    check_known(args.model, args.extractor)
    overrides = parse_overrides(args.overrides)
    if args.device:
        overrides["train.device"] = args.device
    spec = RunSpec.resolve(args.model, args.dataset, args.extractor, args.profile, overrides)
    out = execute(spec, force=args.force)
    if out["skipped"]:
        print(f"already finished: {out['run_key']}; --force to run again")
    manifest = out["manifest"]
    ident = manifest["identity"]
    inputs = "IDs only (no features)" if ident["feature_key"] == "id" else f"{spec.extractor} features"
    print(f"\n{spec.model} on {spec.dataset} with {inputs} [{spec.profile}] run {out['run_key']}")
    if manifest.get("note"):
        print(f"note: {manifest['note']}")
    for protocol in ("sampled", "full"):
        table = headline(out["metrics"], protocol)
        if len(table):
            label = "100 fixed negatives" if protocol == "sampled" else "full ranking"
            print(f"\n{label}:\n{table.to_string(float_format=lambda v: f'{v:.4f}')}")
    resumed = f" over {ident['resumes'] + 1} processes (resumed)" if ident.get("resumes") else ""
    print(f"\nbest epoch {ident['best_epoch']} of {ident['epochs']}, "
          f"{ident['seconds_per_epoch']:.2f} s/epoch, {ident['wall_seconds']:.1f} s in all{resumed}")
    print(f"results: {out['dir'] / 'metrics.csv'} (all runs: {out['dir'].parent.parent / 'metrics.csv'})")
    return 0
