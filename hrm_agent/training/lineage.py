"""Provenance: the runs a checkpoint's weights were trained in, and their totals.

Owns the lineage records a checkpoint's JSON carries (one entry per run, oldest first: steps,
wall and CPU minutes, device, threads) and the totals beside them. Pure functions of plain
dicts, apart from naming a torch device. Must not read or write files or train.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["device_name", "inherited_lineage", "lineage_totals", "ran_on_cpu"]


def inherited_lineage(stem: str, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The lineage a run started ``--init-from`` checkpoint ``stem`` carries on.

    Args:
        stem: the checkpoint's path stem (named in the record of an old checkpoint).
        meta: its JSON meta (as :func:`~hrm_agent.checkpoint.load_checkpoint` returns it).
    """
    lineage = list(meta.get("lineage") or [])
    if lineage:
        return lineage
    # A checkpoint from before lineage was recorded: describe it from its summary.
    return [
        {
            "run": str(stem),
            "steps": meta.get("steps"),
            "minutes": meta.get("minutes"),
            # No CPU time was recorded then: its wall minutes stand in for it.
            "cpu_minutes": meta.get("minutes"),
            "cpu_minutes_estimated": True,
            "device": meta.get("device"),
        }
    ]


def ran_on_cpu(run: dict[str, Any]) -> bool:
    """Whether a lineage entry ran on the CPU (entries from before devices were recorded did)."""
    return str(run.get("device") or "cpu").startswith("cpu")


def lineage_totals(lineage: list[dict[str, Any]]) -> dict[str, Any]:
    """The totals a checkpoint's JSON carries beside its lineage.

    ``total_cpu_minutes`` is the compute of every run in this CPU's minutes: a CPU run's
    measured process time, or, for a run on another device, its ``cpu_minutes_equivalent``
    (its steps at the CPU's measured seconds per step for the same configuration, see
    ``scripts/cpu_equivalent.py``). A device run without that figure counts its host process
    time, which understates it, and ``total_cpu_minutes_complete`` is then false.
    ``total_device_minutes`` is the wall time of the runs on accelerators.
    """
    cpu = 0.0
    device = 0.0
    complete = True
    for run in lineage:
        on_cpu = ran_on_cpu(run)
        if not on_cpu:
            device += float(run.get("minutes") or 0)
        if run.get("cpu_minutes_equivalent") is not None:
            cpu += float(run["cpu_minutes_equivalent"])
        else:
            cpu += float(run.get("cpu_minutes") or 0)
            complete = complete and on_cpu
    return {
        "total_steps": sum(int(run.get("steps") or 0) for run in lineage),
        "total_minutes": round(sum(float(run.get("minutes") or 0) for run in lineage), 3),
        "total_cpu_minutes": round(cpu, 3),
        "total_cpu_minutes_complete": complete,
        "total_device_minutes": round(device, 3),
    }


def device_name(device: torch.device) -> str:
    """``cpu``, or a CUDA device with its model (``cuda:0 (NVIDIA H200)``), for the records."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
