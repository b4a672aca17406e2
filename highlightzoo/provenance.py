"""Where a result came from: versions, git state, device, threads and CPU features.

One place for what every run folder and every benchmark records, so a reader can
tell whether two results were made by the same code on the same kind of
machine. Bit-identical reruns are only expected on one machine with the same
thread count: float reductions run in a different order with other SIMD
features (``cpu_capability``) or threads (docs/results/README.md).
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from highlightzoo import __version__

# CPU flags that change which vectorised kernels torch runs (and so float rounding).
_SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")


def git_state() -> dict[str, Any]:
    """Commit and dirty flag of the checkout the package runs from (None outside git)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def _cpuinfo() -> tuple[str | None, list[str]]:
    """CPU model name and its SIMD flags of interest, from /proc/cpuinfo where there is one."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            lines = fh.readlines()
    except OSError:
        return None, []
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    flags = next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), [])
    return (names[0] if names else None), [f for f in _SIMD_FLAGS if f in flags]


def device_name(device: torch.device | str) -> str:
    """GPU name, or the CPU model and core count."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    name, _ = _cpuinfo()
    return f"{name or platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def environment(device: torch.device | str) -> dict[str, Any]:
    """Versions, git state, device and the CPU facts that decide float rounding."""
    _, flags = _cpuinfo()
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # older torch
        capability = None
    return {
        "highlightzoo": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "cpu_capability": capability,
        "cpu_flags": flags,
        "git": git_state(),
    }
