"""Items per second of each extractor, end to end (model load excluded), on a prepared data set.

    .venv/bin/python benchmarks/extract_speed.py [--dataset beauty] [--extractors base,clip,qwenvl]
        [--batch-sizes 32,64] [--profile mini] [--threads 1]

Each extraction writes into a fresh temporary artifacts folder, so nothing comes from the cache;
tiny models are rebuilt there (their build time is excluded: it happens before the clock starts).
The rate is the store's `items_per_second` (items / wall time of `extract`, which includes
reading images, tokenising, both modalities and PCA). Prints a table and writes
results/benchmarks/extract_speed.csv.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile

import pandas as pd

from extractors.store import extractor_settings, load_or_extract
from extractors.weights import resolve_weights
from protocol.config import results_dir
from protocol.data.prepare import load_dataset
from protocol.fileio import atomic_path


def time_one(dataset, name: str, profile: str, overrides: dict) -> dict:
    """One cold extraction in a throw-away artifacts folder; returns its timing row."""
    outer = os.environ.get("HARNESS_ARTIFACTS")
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["HARNESS_ARTIFACTS"] = scratch
        try:
            settings = extractor_settings(name, profile, overrides)
            for key in ("model", "text_model"):  # build or locate weights before the clock starts
                if key in settings:
                    resolve_weights(settings[key], settings.get("revision", ""), name)
            features = load_or_extract(dataset, name, profile, overrides, progress=False)
        finally:
            if outer is None:
                os.environ.pop("HARNESS_ARTIFACTS", None)
            else:
                os.environ["HARNESS_ARTIFACTS"] = outer
    meta = features.meta
    return {"extractor": name, "batch_size": meta["settings"].get("batch_size"),
            "cpu_threads": meta["settings"].get("cpu_threads"), "items": dataset.n_items,
            "seconds": meta["seconds"], "items_per_second": meta["items_per_second"],
            "device": meta.get("device", "cpu"), "machine": f"{os.cpu_count()}-core {platform.machine()}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--profile", default="mini")
    parser.add_argument("--extractors", default="base,clip,qwenvl")
    parser.add_argument("--batch-sizes", default="", help="comma list; default: each config's own")
    parser.add_argument("--threads", type=int, default=None, help="cpu_threads (default: config's)")
    args = parser.parse_args()

    dataset = load_dataset(args.dataset, args.profile)
    sizes = [int(b) for b in args.batch_sizes.split(",") if b] or [None]
    rows = []
    for name in args.extractors.split(","):
        for size in sizes:
            overrides = {k: v for k, v in (("batch_size", size), ("cpu_threads", args.threads)) if v is not None}
            rows.append(time_one(dataset, name, args.profile, overrides))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    out = results_dir() / "benchmarks" / "extract_speed.csv"
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    print(f"written: {out}")


if __name__ == "__main__":
    main()
