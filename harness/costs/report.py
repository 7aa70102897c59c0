"""The plan command's work: the table Jobs of a target, the costed job table, its text and CSV."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from protocol.errors import HarnessError


def table_jobs_for(target: str, model: str | None, extractor: str, dataset: str | None,
                   datasets: list[str] | None, overrides: dict, profile: str) -> tuple[list, str]:
    """The rows to cost: a plan's jobs (harness.tables.plan), or one run/grid as a Job."""
    from harness.tables.plan import Job, load_plan

    if target in ("run", "grid"):
        if not model:
            raise HarnessError(f"plan {target} needs --model (and --extractor, --dataset), e.g. "
                               f"`python -m harness plan {target} --model vbpr --extractor sda --dataset toys`.")
        from harness.runner import check_known

        check_known(model, extractor)
        fixed = dict(overrides)
        if target == "run":  # one point: every grid axis held at the run's own value
            from harness.grid import grid_axes
            from harness.runner import RunSpec

            axes, rest = grid_axes(model, extractor, overrides, profile)
            params = RunSpec.resolve(model, dataset, extractor, profile, rest).params
            fixed = rest | {f"grid.{k}": [params[k]] for k in axes}
        job = Job(model, extractor, dataset, extractor, tuple(sorted(fixed.items(), key=str)))
        return [job], f"{target}-{model}-{extractor}-{dataset}".replace(":", "_").replace("/", "_")
    if overrides:
        raise HarnessError("plan NAME takes no key=value overrides: plans fix every setting; edit "
                           f"configs/tables/{target}.yaml or the profile instead.")
    plan = load_plan(target)
    if plan.kind == "stats":
        raise HarnessError(f"plan '{target}' only prepares data sets (kind: stats); "
                           f"plan its data with `plan run --model pop --dataset NAME`.")
    jobs = plan.jobs(datasets)
    chosen = list(dict.fromkeys(job.dataset for job in jobs))
    # a partial plan gets a file of its own, beside the whole plan's
    return jobs, plan.name if chosen == plan.datasets else f"{plan.name}.partial-{'-'.join(chosen)}"


def plan_report(table_jobs: list, name: str, profile: str, gpus: int, kind: str, out_dir: Path) -> tuple[str, Path]:
    """The printed plan (jobs, missing inputs once each, totals) and the CSV it writes."""
    from harness.costs.jobs import build_jobs
    from harness.costs.schedule import schedule
    from protocol.fileio import atomic_path

    table = schedule(build_jobs(table_jobs, profile), gpus, kind)
    shown = table.assign(
        job=table["job"].str.slice(0, 60),
        missing=table["missing"].str.slice(0, 50), note=table["note"].str.slice(0, 45),
        pflops=table["pflops"].map(lambda v: f"{v:,.3g}" if v else "-"),
        peak_gb=table["peak_gb"].map(lambda v: "-" if pd.isna(v) else f"{v:.1f}"),
        gpu_hours=table["gpu_hours"].map(lambda v: f"{v:,.2f}" if v else "-"),
        mfu=[f"{m:.0%} {s}" if s else "-" for m, s in zip(table["mfu"], table["mfu_source"])],
        end_h=table["end_h"].map(lambda v: f"{v:,.1f}"))
    columns = ["step", "job", "after", "pflops", "peak_gb", "gpus", "mfu", "gpu_hours", "end_h", "note", "missing"]
    lines = [f"plan {name}, profile {profile}: {len(table)} jobs on {gpus} x {kind} (nothing run)",
             shown[columns].to_string(index=False)]
    needs = _once(zip(table["missing"], table["fix"]))
    if needs:
        lines.append(f"\nmissing ({len(needs)}), each once:")
        lines += [f"  - {what}: {how}" if how else f"  - {what}" for what, how in needs.items()]
    tokens = table[table["tokens_from"] != ""].drop_duplicates("dataset")
    if len(tokens):
        lines.append("\ntoken counts from:")
        lines += [f"  - {d}: {source}" for d, source in zip(tokens["dataset"], tokens["tokens_from"])]
    sources = sorted({s for s in table["mfu_source"] if s})
    peak = f"{table['peak_gb'].max():.1f} GB" if table["peak_gb"].notna().any() else "n/a"
    lines.append(f"\ntotal: {table['pflops'].sum():,.1f} PFLOP, {table['gpu_hours'].sum():,.1f} GPU-hours, "
                 f"wall {table['end_h'].max():,.1f} h on {gpus} x {kind}; peak memory {peak} a GPU; "
                 f"utilisation {', '.join(sources) or 'n/a'} "
                 "(docs/plan.md: formulas and assumptions)")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}-{profile}-{gpus}x{kind}.csv"
    with atomic_path(path) as tmp:
        table.assign(profile=profile, gpu=kind, n_gpus=gpus).to_csv(tmp, index=False)
    return "\n".join(lines), path


def _once(pairs) -> dict[str, str]:
    """{missing input: its fix}, each input once, from (missing, fix) strings joined by "; "."""
    needs = {}
    for missing, fix in pairs:
        if missing:
            for what, how in zip(missing.split("; "), fix.split("; ") + [""] * missing.count("; ")):
                needs.setdefault(what, how)
    return needs


def missing_inputs(table_jobs: list, profile: str) -> dict[str, str]:
    """Every input a build lacks, once, with its fix: what a build can check before any work
    (raw files, CNN feature files, weights, item images); no costs are computed."""
    from harness.costs.jobs import build_jobs

    jobs = build_jobs(table_jobs, profile, costs=False)
    return _once(("; ".join(j.missing), "; ".join(j.fixes)) for j in jobs)
