"""table: build a table or figure of the paper from its plan (configs/tables/<name>.yaml)."""
from __future__ import annotations

from harness.commands import add_address, add_common
from harness.executors import EXECUTORS
from protocol.config import positive_int

ORDER = 40


def add_parser(sub) -> None:
    p = sub.add_parser("table", help="build a paper table or figure from its plan (table1, table2, table3, figure3, figure4)",
                       description="Run whatever the plan in configs/tables/NAME.yaml still needs (data sets, "
                                   "features, adapters, teachers, every grid point; finished work is reused), "
                                   "then write results/tables/NAME.{csv,md,tex} or results/figures/NAME.{png,pdf}. "
                                   "A killed build resumes where it stopped.")
    p.add_argument("name", help="plan name: table1 | table2 | table3 | figure3 | figure4 (configs/tables/)")
    p.add_argument("--datasets", nargs="+", default=None, help="only these of the plan's data sets")
    p.add_argument("--executor", default="local", choices=EXECUTORS, help="local (default) | ray: where grid points run")
    p.add_argument("--workers", type=positive_int, default=1, help="grid points in parallel (default 1)")
    add_address(p)
    add_common(p, dataset=False)
    p.set_defaults(func=main)


def main(args) -> int:
    import sys

    from harness.tables.plan import load_plan
    from protocol.config import parse_overrides, profile_name, results_dir
    from protocol.errors import HarnessError

    if args.overrides:
        parse_overrides(args.overrides)
        raise HarnessError("table takes no key=value overrides: plans fix every setting; edit "
                           f"configs/tables/{args.name}.yaml or the profile instead.")
    plan = load_plan(args.name)
    profile = profile_name(args.profile)
    if plan.kind == "stats":
        from harness.tables.datasets import statistics, write_statistics
        from harness.tables.report import provenance_line

        table = statistics(plan, profile)
        caption = f"{plan.title}. {provenance_line(profile, dict(zip(table['dataset'], table['content_hash'])))}"
        paths = write_statistics(table, plan.output_name(profile), caption, results_dir() / "tables")
        print(table.drop(columns=["content_hash"]).to_string(index=False))
    else:
        from harness.tables.build import build
        from harness.tables.report import write_figure, write_table

        check_inputs(plan, args.name, profile, args.datasets)

        built = build(plan, profile, args.datasets, args.executor, args.workers, address=args.address)
        paths = (write_figure if plan.figure else write_table)(plan, built, profile)
        print(f"{plan.name}: {len(built.cells)} cells in {built.seconds:.0f} s "
              f"(details of each run: {results_dir() / 'tables' / (built.name + '.log')})")
        for job, reason in built.failures.items():
            print(f"failed: {job.label}: {reason}", file=sys.stderr)
    for path in paths:
        print(f"written: {path}")
    return 1 if plan.kind != "stats" and built.failures else 0


def check_inputs(plan, name: str, profile: str, datasets: list[str] | None) -> None:
    """Every input the build lacks (raw files, weights, CNN vectors, item images), each named once
    with its fix, before any work; nothing is written (harness plan lists the same with costs)."""
    import sys

    from harness.costs.report import missing_inputs
    from protocol.errors import HarnessError

    missing = missing_inputs(plan.jobs(datasets), profile)
    for what, fix in missing.items():
        print(f"missing: {what}: {fix}", file=sys.stderr)
    if missing:
        only = f" --datasets {' '.join(datasets)}" if datasets else ""
        raise HarnessError(f"{name} --profile {profile} lacks the {len(missing)} input(s) above; place them and run "
                           f"again (`python -m harness plan {name} --profile {profile}{only}` lists each job).")
