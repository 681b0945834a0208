"""The files a save writes for ``--resume`` and for users: what they hold and what a resume checks.

Owns the layout of ``model.trainer.pt`` (format and version, the float32 weights, optimizer,
step, the whole batch, the carry, the data pool and every RNG state, so a resumed run continues
bit for bit), the meta of the checkpoint's JSON, and restoring a :class:`Trainer` from a state.
Writing goes through :mod:`hrm_agent.checkpoint`. Must not train, log or decide when to save.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hrm_agent.checkpoint import load_trainer_state
from hrm_agent.model import Carry
from hrm_agent.training.data import Batch, PuzzleSource
from hrm_agent.training.lineage import device_name, lineage_totals
from hrm_agent.training.options import RESUMABLE_CHANGES, TrainConfig
from hrm_env.puzzles.tasks import PuzzleBatch

if TYPE_CHECKING:
    from hrm_agent.training.trainer import Trainer

__all__ = [
    "TRAINER_STATE_FORMAT",
    "TRAINER_STATE_VERSION",
    "checkpoint_meta",
    "read_state",
    "restore",
    "trainer_state",
]

TRAINER_STATE_FORMAT = "hrm-trainer-state"
TRAINER_STATE_VERSION = 1


def trainer_state(
    trainer: Trainer, carry: Carry, q_prefix: dict[str, torch.Tensor] | None
) -> dict[str, Any]:
    """Everything ``--resume`` needs, as tensors and plain values (``weights_only`` loadable).

    Args:
        trainer: the run.
        carry: the global batch's carry, gathered from every rank (CPU).
        q_prefix: the delayed bootstrap's gathered ``{"state", "valid"}``, or None.
    """
    return {
        "format": TRAINER_STATE_FORMAT,
        "version": TRAINER_STATE_VERSION,
        "config": trainer.config.to_dict(),
        "step": trainer.step,
        "train_seconds": trainer.train_seconds,
        "cpu_seconds": trainer.cpu_seconds,
        "parent_lineage": json.dumps(trainer.parent_lineage),
        "model_config": json.dumps(trainer.model.config.to_dict()),
        "model": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
        "ema": None
        if trainer.ema_state is None
        else {k: v.cpu() for k, v in trainer.ema_state.items()},
        "optimizer": _to_cpu(trainer.optimizer.state_dict()),
        "carry": {"z_H": carry.z_H, "z_L": carry.z_L},
        "q_prefix": q_prefix,
        "batch": {
            "inputs": torch.from_numpy(trainer.batch.inputs.copy()),
            "targets": torch.from_numpy(trainer.batch.targets.copy()),
            "segments": torch.from_numpy(trainer.batch.segments.copy()),
            "min_segments": torch.from_numpy(trainer.batch.min_segments.copy()),
        },
        "pool": None
        if trainer.source.pool is None
        else {
            "inputs": torch.from_numpy(np.ascontiguousarray(trainer.source.pool.inputs)),
            "targets": torch.from_numpy(np.ascontiguousarray(trainer.source.pool.targets)),
            "ratings": torch.from_numpy(np.ascontiguousarray(trainer.source.pool.ratings)),
        },
        "rng": {
            "numpy": trainer.rng.bit_generator.state,
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "noise": trainer.noise_generator.get_state(),
        },
        "last_eval": trainer.last_eval,
        "tier_evals": json.dumps(trainer.tier_evals),
    }


def checkpoint_meta(trainer: Trainer) -> dict[str, Any]:
    """The meta of the checkpoint's JSON: the training summary, metrics and lineage."""
    lineage = trainer.lineage()
    return {
        "task": trainer.task.name,
        "preset": trainer.config.preset,
        "train_config": trainer.config.to_dict(),
        "steps": trainer.step,
        "samples_seen": trainer.step * trainer.config.batch_size,
        "minutes": round(trainer.train_seconds / 60, 3),
        "device": device_name(trainer.device),
        "world_size": trainer.world.size,
        "weights": "ema" if trainer.ema_state is not None else "raw",
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
        "eval": trainer.last_eval,
        "eval_tiers": trainer.tier_evals,
        "lineage": lineage,
        **lineage_totals(lineage),
    }


def read_state(path: Path) -> dict[str, Any]:
    """The trainer state at ``path``, checked to be one this hrm can resume."""
    if not path.is_file():
        raise FileNotFoundError(f"nothing to resume: no trainer state at {path}")
    state = load_trainer_state(path)
    if state.get("format") != TRAINER_STATE_FORMAT:
        raise ValueError(f"{path} is not an hrm trainer state")
    if state.get("version") != TRAINER_STATE_VERSION:
        raise ValueError(
            f"{path} has trainer-state version {state.get('version')!r}; "
            f"this hrm reads version {TRAINER_STATE_VERSION}"
        )
    return state


def restore(trainer: Trainer, state: dict[str, Any]) -> None:
    """Continue ``trainer`` (built with the same config) from a state read by :func:`read_state`.

    Raises:
        ValueError: the config differs in a field outside ``RESUMABLE_CHANGES``, or the state
            does not fit the model.
    """
    saved = TrainConfig.from_dict(state["config"]).to_dict()
    now = trainer.config.to_dict()
    changed = sorted(k for k in now if now[k] != saved[k] and k not in RESUMABLE_CHANGES)
    if changed:
        details = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed)
        raise ValueError(f"cannot resume {trainer.out_dir} with a different run config ({details})")
    try:
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, KeyError, ValueError) as err:
        raise ValueError(
            f"trainer state {trainer.state_path} does not fit the model: {err}"
        ) from err
    device, rows = trainer.device, trainer.rows
    if trainer.ema_state is not None:
        trainer.ema_state = {k: v.to(device) for k, v in state["ema"].items()}
    trainer.step = int(state["step"])
    trainer.train_seconds = float(state["train_seconds"])
    trainer.cpu_seconds = float(state.get("cpu_seconds", trainer.train_seconds))
    trainer.parent_lineage = json.loads(state.get("parent_lineage") or "[]")
    trainer.last_eval = state.get("last_eval")
    trainer.tier_evals = json.loads(state.get("tier_evals") or "{}")
    trainer.rng = np.random.default_rng()
    trainer.rng.bit_generator.state = state["rng"]["numpy"]
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    if state["rng"].get("noise") is not None:  # states saved before carry_noise lack it
        trainer.noise_generator.set_state(state["rng"]["noise"])
    pool = None
    if state["pool"] is not None:
        p = state["pool"]
        pool = PuzzleBatch(p["inputs"].numpy(), p["targets"].numpy(), p["ratings"].numpy())
    trainer.source = PuzzleSource(trainer.task, trainer.config.difficulty, pool)
    b = state["batch"]
    trainer.batch = Batch(
        inputs=b["inputs"].numpy().copy(),
        targets=b["targets"].numpy().copy(),
        segments=b["segments"].numpy().copy(),
        min_segments=b["min_segments"].numpy().copy(),
    )
    trainer.carry = Carry(
        state["carry"]["z_H"][rows].to(device), state["carry"]["z_L"][rows].to(device)
    )
    if state.get("q_prefix") is not None:
        trainer.q_prefix = state["q_prefix"]["state"][rows].to(device)
        trainer.q_prefix_valid = state["q_prefix"]["valid"][rows].to(device)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
