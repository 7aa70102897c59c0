"""GPU-hours and wall time of a job list on N GPUs of one kind, as a table (pandas).

A job's GPU-seconds = FLOPs / (peak bf16 FLOP/s x utilisation). Greedy list scheduling: of the
jobs whose inputs are scheduled, the one that can start first goes next (plan order breaks
ties), on the GPUs free earliest: an adapter on its `adapt_processes` GPUs, extraction shards and
grid points spread over every GPU (one piece a GPU). So an adapter of one data set trains while
the other GPUs extract or run grids of another. CPU and network jobs (prepare, images) are not
costed and take no time here.
"""
from __future__ import annotations

import heapq

import pandas as pd

from harness.costs.gpus import gpu_kind, utilisation
from harness.costs.jobs import PlanJob
from harness.costs.memory import GB


def _place(free: list, ready: float, seconds: float, width: int, pieces: int) -> tuple[float, float]:
    """Put `pieces` pieces of `width` GPUs each on the earliest-free GPUs; (start, end)."""
    per_piece = seconds / (width * pieces)
    start, end = None, ready
    for _ in range(pieces):
        taken = [heapq.heappop(free) for _ in range(width)]
        begin = max([ready] + [t for t, _ in taken])
        start = begin if start is None else min(start, begin)
        end = max(end, begin + per_piece)
        for _, g in taken:
            heapq.heappush(free, (begin + per_piece, g))
    return start, end


def schedule(jobs: list[PlanJob], gpus: int, kind: str) -> pd.DataFrame:
    peak_tflops, memory_gb = gpu_kind(kind)
    free = [(0.0, g) for g in range(gpus)]  # (time the GPU is free, GPU)
    heapq.heapify(free)
    seconds, times, pending = {}, {}, list(range(len(jobs)))
    for index, job in enumerate(jobs):
        mfu = utilisation(job.workload)[0] if job.workload else 0.0
        seconds[index] = job.flops / (peak_tflops * 1e12 * mfu) if job.workload else 0.0
    while pending:
        startable = [i for i in pending if all(d in times for d in jobs[i].after)]
        ready = {i: max([times[d][1] for d in jobs[i].after], default=0.0) for i in startable}
        soonest = free[0][0]
        index = min(startable, key=lambda i: (max(ready[i], soonest if seconds[i] else 0.0), i))
        pending.remove(index)
        job = jobs[index]
        if seconds[index] > 0:
            width = min(job.processes, gpus) if job.processes else 1
            pieces = 1 if job.processes else min(gpus, job.pieces or gpus)
            times[index] = _place(free, ready[index], seconds[index], width, pieces)
        else:
            times[index] = (ready[index], ready[index])
    return pd.DataFrame([_row(i, job, seconds[i], times[i], gpus, kind, memory_gb) for i, job in enumerate(jobs)])


def _row(index: int, job: PlanJob, seconds: float, times: tuple[float, float], gpus: int, kind: str,
         memory_gb: int) -> dict:
    mfu, source = utilisation(job.workload) if job.workload else (float("nan"), "")
    missing, fixes = list(job.missing), list(job.fixes)
    if job.processes > gpus:
        missing.append(f"{job.processes} GPUs (adapt_processes={job.processes})")
        fixes.append(f"plan and run with --gpus {job.processes}, or set adapt_processes to the GPUs at hand")
    if job.peak_bytes > memory_gb * GB:
        missing.append(f"{job.peak_bytes / GB:.0f} GB of GPU memory ({kind} has {memory_gb})")
        fixes.append("a GPU kind with more memory (--gpu h200), or a smaller batch_size / batch_items")
    return {"step": index + 1, "kind": job.kind, "dataset": job.dataset, "job": job.what,
            "after": " ".join(str(i + 1) for i in job.after), "missing": "; ".join(missing),
            "fix": "; ".join(fixes), "pflops": job.flops / 1e15,
            "peak_gb": job.peak_bytes / GB if job.peak_bytes else float("nan"),
            "gpus": job.processes or (min(gpus, job.pieces or gpus) if seconds else 0),
            "mfu": mfu, "mfu_source": source, "gpu_hours": seconds / 3600,
            "start_h": times[0] / 3600, "end_h": times[1] / 3600, "note": job.note, "tokens_from": job.tokens_from}
