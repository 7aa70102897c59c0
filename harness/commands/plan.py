"""plan: every job of a build (a table plan, a grid or a single run), what it lacks and what it costs."""
from __future__ import annotations

import argparse

ORDER = 39


def _options(p, default=None) -> None:
    """The plan's options; `default` argparse.SUPPRESS leaves out the ones not given."""
    def opt(*names, value, **kw):
        p.add_argument(*names, default=value if default is None else default, **kw)

    opt("--model", "-m", value=None, help="run/grid: the recommender")
    opt("--extractor", "-e", value="base", help="run/grid: the feature extractor (default base)")
    opt("--dataset", "-d", value="beauty", help="run/grid: the data set (default beauty)")
    opt("--datasets", value=None, nargs="+", help="plan: only these of its data sets")
    opt("--gpus", value=1, type=int, help="GPUs to spread the work over (default 1)")
    opt("--gpu", value="h100", help="GPU kind: h100 (default), h200, a100, a100-40gb, l40s, a10g, l4")
    opt("--profile", value=None, help="mini (default) or paper; env HARNESS_PROFILE")


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="list a build's jobs, their missing inputs and estimated GPU cost (runs nothing)",
                       description="Print, without running anything, every job a build needs in order (prepare, "
                                   "images, adapt, extract, RAT teachers, grid points), each with what is missing "
                                   "and its fix, estimated FLOPs, peak GPU memory, GPU-hours and wall time on "
                                   "--gpus GPUs of kind --gpu; writes the table to results/plans/. docs/plan.md.")
    # Everything after the target is parsed again in main with parse_intermixed_args, so key=value
    # overrides may follow the options (`plan run --model vbpr lr=0.01`): argparse alone takes a
    # positional list once and would refuse the trailing overrides.
    p.add_argument("words", nargs=argparse.REMAINDER, metavar="TARGET [options] [key=value ...]",
                   help="a plan (table1 | table3 | figure3 | figure4, or a plan YAML), or `run` / `grid` "
                        "with --model, --extractor, --dataset and key=value overrides")
    _options(p)
    p.set_defaults(func=main)


def main(args) -> int:
    from harness.costs.report import plan_report, table_jobs_for
    from protocol.config import parse_overrides, profile_name, results_dir
    from protocol.errors import HarnessError

    inner = argparse.ArgumentParser(prog="python -m harness plan", add_help=False)
    inner.add_argument("target")
    inner.add_argument("overrides", nargs="*")
    _options(inner, argparse.SUPPRESS)
    if not args.words:
        raise HarnessError("plan needs a target: a plan name (table1) or run/grid with --model; "
                           "see `python -m harness plan --help`.")
    given = inner.parse_intermixed_args(args.words)
    for key, value in vars(given).items():
        setattr(args, key, value)
    if args.gpus < 1:
        raise HarnessError("--gpus takes a count of at least 1.")
    from harness.costs.gpus import gpu_kind

    gpu_kind(args.gpu)  # an unknown kind fails before any work
    profile = profile_name(args.profile)
    table_jobs, name = table_jobs_for(args.target, args.model, args.extractor, args.dataset, args.datasets,
                                      parse_overrides(args.overrides), profile)
    text, path = plan_report(table_jobs, name, profile, args.gpus, args.gpu, results_dir() / "plans")
    print(text)
    print(f"written: {path}")
    return 0
