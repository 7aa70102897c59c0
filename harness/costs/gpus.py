"""GPU kinds (peak dense bf16 tensor TFLOPS and memory) and the utilisation the plan assumes.

Utilisation (model FLOP utilisation, MFU) per workload comes from the GPU check's CSV
(benchmarks/gpu_check.py, results/benchmarks/gpu_check.csv) when it exists, else from
ASSUMED_MFU: 40% for the transformer extractors and the adapter (a common figure for bf16
training and batched inference of 7B models on H100/A100), 2% for the recommenders (models of
a few million parameters: kernel launches, data loading and per-epoch evaluation dominate).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from protocol.config import results_dir
from protocol.errors import HarnessError

# kind -> (peak dense bf16 TFLOPS without sparsity, memory GB), from the vendors' data sheets.
GPUS = {"h100": (989.0, 80), "h200": (989.0, 141), "a100": (312.0, 80), "a100-40gb": (312.0, 40),
        "l40s": (362.0, 48), "a10g": (125.0, 24), "l4": (121.0, 24)}
ASSUMED_MFU = {"extract": 0.40, "adapt": 0.40, "clip": 0.40, "minilm": 0.40, "recommender": 0.02}
# workload -> the GPU check's row that measures it
MEASURED_BY = {"extract": "extract_qwen", "adapt": "adapt_step", "clip": "clip_image"}


def gpu_kind(name: str) -> tuple[float, int]:
    if name not in GPUS:
        raise HarnessError(f"unknown GPU kind '{name}'; use one of {', '.join(GPUS)} "
                           "(or add its peak bf16 TFLOPS and memory to harness/costs/gpus.py).")
    return GPUS[name]


def check_csv() -> Path:
    return results_dir() / "benchmarks" / "gpu_check.csv"


def utilisation(workload: str, path: Path | None = None) -> tuple[float, str]:
    """(MFU, where it comes from) for a workload."""
    path = path or check_csv()
    row = MEASURED_BY.get(workload)
    if row and path.exists():
        table = pd.read_csv(path)
        found = table[(table["what"] == row) & table["mfu"].notna()]
        if len(found) and not bool(found["tiny"].iloc[-1]):
            measured = found.iloc[-1]
            return float(measured["mfu"]), f"measured ({measured['device']})"
    return ASSUMED_MFU[workload], "assumed"
