"""extract: write an extractor's feature set for a data set (cached by content)."""
from __future__ import annotations

from harness.commands import add_common

ORDER = 15


def add_parser(sub) -> None:
    from extractors.registry import EXTRACTORS  # light: names only (plugins' entry points, unimported)

    p = sub.add_parser("extract", help="item features of one extractor -> artifacts/features/",
                       description="Extract image and text features of every item of a data set with "
                                   "one extractor; a feature set with the same settings and data is reused.")
    p.add_argument("--extractor", "-e", required=True, help=EXTRACTORS.listing())
    p.add_argument("--processes", type=int, default=1,
                   help="split items across this many processes (torchrun; one GPU each when present)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--force", action="store_true",
                   help="extract again even if this feature set is cached (replaces it and its raw shards)")
    add_common(p)  # key=value overrides here are the extractor's settings, e.g. batch_size=8
    p.set_defaults(func=main)


def relaunch_command(args) -> list[str]:
    """The torchrun command running this same extraction on `args.processes` workers."""
    import sys

    command = ["extract", "--extractor", args.extractor, "--dataset", args.dataset]
    command += ["--profile", args.profile] if args.profile else []
    command += ["--quiet"] if args.quiet else []
    command += ["--force"] if args.force else []
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={args.processes}", "-m", "harness", *command, *args.overrides]


def check_adapter_processes(settings: dict, dataset, processes: int) -> None:
    """An SDA adapter still to train must be keyed for these processes: refuse before starting them."""
    if "adapt_processes" not in settings:
        return
    from extractors.sda.store import adapter_dir
    from extractors.sda.train import check_processes

    if not (adapter_dir(dataset, settings) / "sda.json").exists():
        check_processes(settings, processes)


def main(args) -> int:
    import os
    import subprocess

    from protocol.config import parse_overrides
    from protocol.data.prepare import load_dataset
    from protocol.errors import HarnessError

    from extractors.base import check_extractor_settings
    from extractors.registry import EXTRACTORS
    from extractors.shards import process_ranks
    from extractors.store import find_cached, load_or_extract, make_extractor

    if args.processes < 1:
        raise HarnessError(f"--processes must be at least 1, not {args.processes}.")
    EXTRACTORS.check(args.extractor)
    overrides = parse_overrides(args.overrides)
    check_extractor_settings(args.extractor, args.profile, overrides)  # before the data set is prepared
    dataset = load_dataset(args.dataset, args.profile)
    if args.processes > 1 and "WORLD_SIZE" not in os.environ:
        check_adapter_processes(make_extractor(args.extractor, dataset, args.profile, overrides).settings(),
                                dataset, args.processes)
        return subprocess.call(relaunch_command(args))
    cached = None if args.force else find_cached(make_extractor(args.extractor, dataset, args.profile, overrides),
                                                   dataset)
    features = cached or load_or_extract(dataset, args.extractor, args.profile, overrides,
                                         progress=not args.quiet, force=args.force)
    if not process_ranks().is_main:
        return 0
    meta = features.meta
    how = "found in the cache (--force to extract again)" if cached else "extracted"
    print(f"{args.extractor} features of {dataset.name} {how}: image {features.image.shape[1]}-d, "
          f"text {features.text.shape[1]}-d, {dataset.n_items} items, key {features.key}")
    if "items_per_second" in meta:
        print(f"extraction took {meta['seconds']:.1f} s ({meta['items_per_second']:.1f} items/s)")
    print(f"feature set: {features.path}")
    return 0
