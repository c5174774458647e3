"""Where and with what a run ran: git commit, package versions, host, device, scheduler job."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "numpy", "gymnasium", "ale-py", "crafter", "rliable", "pandas", "submitit", "wmbench")
REPO_ROOT = Path(__file__).resolve().parents[1]


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"{device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def job_info() -> dict[str, Any]:
    """The scheduler's job id and restart count, when running under SLURM/submitit."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    job_id = f"{array_job}_{task}" if array_job and task else os.environ.get("SLURM_JOB_ID")
    info: dict[str, Any] = {"job_id": job_id}
    if "SLURM_RESTART_COUNT" in os.environ:
        info["slurm_restart_count"] = int(os.environ["SLURM_RESTART_COUNT"])
    if os.environ.get("WMBENCH_EXECUTOR"):
        info["executor"] = os.environ["WMBENCH_EXECUTOR"]
    return info


def provenance() -> dict[str, Any]:
    return {"git": git_state(), "packages": package_versions(), "python": platform.python_version(),
            "host": socket.gethostname(), "platform": platform.platform()}
