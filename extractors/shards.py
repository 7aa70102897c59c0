"""Extraction at scale: devices, torchrun ranks, and .npy shards that resume and merge.

Items are cut into shards of `shard_items` consecutive indices. A shard is computed by one
process, written atomically as `<modality>-<first>-<stop>.npy` (plus a .json of notes, such as
image counts) and skipped when it already exists,
so an interrupted extraction resumes where it stopped. Under `torchrun` (WORLD_SIZE > 1) rank r
takes shards r, r + W, r + 2W, ...; batches are formed inside a shard, so which process
computes a shard does not change its numbers and the merged matrix equals a one-process run.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from protocol.errors import HarnessError
from protocol.fileio import save_npy, write_json


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def process_ranks() -> Ranks:
    """This process's rank under torchrun (gloo process group, started once), else rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks()
    import torch.distributed as dist

    if not dist.is_initialized():
        # gloo: only barriers cross processes (shards go through the shared disk), so it
        # serves GPU and CPU runs alike.
        dist.init_process_group("gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        import torch.distributed as dist

        dist.barrier()


def shard_starts(n_items: int, shard_items: int) -> list[int]:
    return list(range(0, n_items, shard_items))


def shard_path(work_dir: Path, modality: str, start: int, stop: int) -> Path:
    """Named by its item range, so shards of another `shard_items` never pass for these."""
    return Path(work_dir) / f"{modality}-{start:08d}-{stop:08d}.npy"


def my_shards(n_items: int, shard_items: int, ranks: Ranks) -> list[tuple[int, int]]:
    """(start, stop) of the shards this process computes."""
    starts = shard_starts(n_items, shard_items)
    return [(s, min(s + shard_items, n_items)) for k, s in enumerate(starts) if k % ranks.world == ranks.rank]


def run_shards(work_dir: Path, modality: str, n_items: int, shard_items: int,
               encode: Callable[[np.ndarray], tuple[np.ndarray, dict]], ranks: Ranks, bar=None) -> None:
    """Compute this process's missing shards; `encode(indices)` -> ((len, dim) rows, notes)."""
    for start, stop in my_shards(n_items, shard_items, ranks):
        path = shard_path(work_dir, modality, start, stop)
        if path.exists():  # finished before an interruption
            if bar is not None:
                bar.update(stop - start)
            continue
        rows, notes = encode(np.arange(start, stop))
        # Notes first: the .npy is the shard's completion mark.
        write_json(path.with_suffix(".json"), notes)
        save_npy(path, np.ascontiguousarray(rows, dtype=np.float32))


def merge_shards(work_dir: Path, modality: str, n_items: int, shard_items: int) -> tuple[np.ndarray, list]:
    """The full (n_items, dim) matrix of `modality` from its shards in item order, and their notes."""
    paths = [shard_path(work_dir, modality, start, min(start + shard_items, n_items))
             for start in shard_starts(n_items, shard_items)]
    notes = [_read_shard(p.with_suffix(".json"), lambda f: json.loads(f.read_text())) for p in paths]
    return np.concatenate([_read_shard(p, np.load) for p in paths], axis=0), notes


def _read_shard(path: Path, read):
    """`read(path)`, or the one-line error naming a damaged shard (shards are written atomically,
    so only something outside the harness cuts one) and the command that discards it."""
    try:
        return read(path)
    except (OSError, ValueError, EOFError) as err:
        raise HarnessError(f"the extraction shard {path} is damaged ({type(err).__name__}: {err}); extract "
                           "again with `python -m harness extract ... --force` (it discards the shards).") from None


def length_sorted_batches(lengths, batch_size: int) -> list[np.ndarray]:
    """Positions grouped into batches of similar length (longest first) to cut padding.

    A stable sort keeps ties in item order, so the batches are the same on every run.
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


ONE_PROCESS = Ranks()


def resolve_device(device: str = "auto", ranks: Ranks = ONE_PROCESS):
    """`auto`: this process's GPU under torchrun, else the only GPU, else the CPU."""
    import torch

    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", ranks.rank % torch.cuda.device_count())
    return torch.device("cpu")


def resolve_dtype(dtype: str, device):
    """`auto`: bf16 on GPU (as the paper ran), fp32 on CPU (where bf16 matmuls are slow and coarse)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    except KeyError:
        raise HarnessError(f"dtype '{dtype}' is not one of auto, bf16, fp16, fp32; fix dtype=.") from None


def dtype_name(settings: dict) -> str:
    """The dtype `settings` compute in, by name (float32, bfloat16, float16), with `auto`
    resolved for this machine: what cache keys record, so an fp32 CPU run and a bf16 GPU run
    never share a key or a resumed shard."""
    return str(resolve_dtype(settings["dtype"], resolve_device(settings.get("device", "auto")))).replace("torch.", "")


def progress_bar(total: int, what: str, enabled: bool):
    """A tqdm bar counting items (its rate is the items per second)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=what, unit="item", disable=not enabled, file=sys.stderr,
                dynamic_ncols=True)


def extract_sharded(work_dir: Path, n_items: int, shard_items: int, encoders: dict, ranks: Ranks,
                    label: str, progress: bool):
    """Run every modality's shards on this process, wait for all, merge on rank 0.

    `encoders[modality](bar)` returns the `encode(indices) -> (rows, notes)` of run_shards.
    Returns ({modality: matrix}, {modality: [notes]}) on rank 0 and None on the others.
    """
    if work_dir is None:
        raise HarnessError(f"extractor '{label}' needs a work folder for its shards; run it through "
                           "extractors.store.load_or_extract or `python -m harness extract`.")
    mine = sum(stop - start for start, stop in my_shards(n_items, shard_items, ranks))
    for modality, make_encode in encoders.items():
        with progress_bar(mine, f"{label} {modality}", progress and ranks.is_main) as bar:
            run_shards(work_dir, modality, n_items, shard_items, make_encode(bar), ranks, bar)
    barrier(ranks)
    if not ranks.is_main:
        return None
    raw, notes = {}, {}
    for modality in encoders:
        raw[modality], notes[modality] = merge_shards(work_dir, modality, n_items, shard_items)
    return raw, notes


# The running settings every sharded extractor takes. Only dtype changes the numbers; the rest
# (RUN_SETTINGS) only change speed or placement, so the store leaves them out of cache keys.
RUN_DEFAULTS = {
    "dtype": "auto",
    "shard_items": 4096,
    "device": "auto",
    "cpu_threads": 0,  # torch CPU threads while extracting; 0 = torch's default
}
RUN_SETTINGS = ("batch_size", "device", "shard_items", "cpu_threads")
