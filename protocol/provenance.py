"""What every result records about where it came from: git commit, package versions, machine."""
from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata

from protocol.config import REPO_ROOT

PACKAGES = ("torch", "numpy", "pandas", "scipy", "transformers", "peft", "scikit-learn",
            "sentence-transformers", "ray")


def git_commit(root=REPO_ROOT) -> str:
    """HEAD's hash, with "+dirty" when tracked files differ from it; "unknown" outside git.

    Untracked and ignored files (results/, artifacts/: what runs write) do not count, so the
    mark means that the code differs from the commit.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine() -> dict[str, str]:
    import os

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": str(os.cpu_count()), "gpu": gpu,
            # the host, and on a Ray cluster the node (harness.cluster.NODE_ENV) that ran the job
            "node": os.environ.get("HARNESS_NODE", platform.node())}
