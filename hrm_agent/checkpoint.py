"""Checkpoints: ``STEM.safetensors`` (weights) + ``STEM.json`` (config, task, meta).

Weights never go through pickle. Each file is written to a temporary file in the same folder
and moved into place with ``os.replace`` (:mod:`hrm_env.fileio`), so a crash or a full disk
leaves either the old or the new file, never a torn one. The weights are written first and the JSON last: a JSON that names a config
always sits next to weights written for it (or earlier ones, which loading then rejects by
shape).

The JSON object: ``{"format": "hrm-checkpoint", "version": 1, "task": str | null,
"config": HRMConfig.to_dict(), "meta": {...training summary and metrics...}}``.

Trainer state (optimizer, step, RNG states) is a separate ``*.trainer.pt`` written by
:func:`save_trainer_state` and read back with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from hrm_agent.config import HRMConfig
from hrm_agent.layers import Rotary
from hrm_agent.model import HRM, output_table, wall_table
from hrm_env.fileio import atomic_write, write_text

FORMAT = "hrm-checkpoint"
VERSION = 1
_DTYPES = {
    None: None,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def checkpoint_paths(stem: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The (weights, JSON) paths of a checkpoint stem; a given suffix is dropped."""
    stem = Path(stem)
    if stem.suffix in (".safetensors", ".json"):
        stem = stem.with_suffix("")
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_checkpoint(
    stem: str | os.PathLike[str],
    model: HRM,
    config: HRMConfig | None = None,
    meta: dict[str, Any] | None = None,
    task: str | None = None,
    dtype: torch.dtype | str | None = None,
) -> tuple[Path, Path]:
    """Write ``STEM.safetensors`` and ``STEM.json`` atomically.

    Args:
        stem: path without suffix (``runs/sudoku/best`` -> ``best.safetensors``, ``best.json``).
        model: the network whose ``state_dict`` is saved (pass the EMA copy to ship EMA weights).
        config: its config; defaults to ``model.config`` and must equal it.
        meta: JSON-serialisable training summary and metrics.
        task: task name; defaults to ``meta["task"]`` when present.
        dtype: store floating tensors as this dtype (``torch.bfloat16`` / ``"bfloat16"`` halves
            the file); loading always gives float32 parameters.

    Returns:
        The (weights, JSON) paths written.

    Raises:
        ValueError: for a config other than the model's, an unknown dtype or a meta that is
            not JSON.
        WriteError: naming the file that could not be written (the other one, and any
            earlier checkpoint under ``stem``, are left whole).
    """
    config = model.config if config is None else config
    if config != model.config:
        raise ValueError("config differs from model.config; save the model's own config")
    meta = dict(meta or {})
    task = task if task is not None else meta.pop("task", None)
    meta.pop("task", None)
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {[k for k in _DTYPES if k]}, got {dtype!r}")
        dtype = _DTYPES[dtype]
    document = {
        "format": FORMAT,
        "version": VERSION,
        "task": task,
        "config": config.to_dict(),
        "meta": meta,
    }
    try:
        text = json.dumps(document, indent=2, sort_keys=False, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"checkpoint meta is not JSON-serialisable: {err}") from err

    tensors = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor.contiguous()

    weights_path, json_path = checkpoint_paths(stem)
    atomic_write(weights_path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))
    write_text(json_path, text + "\n")
    return weights_path, json_path


def read_checkpoint_json(stem: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed and checked JSON document of a checkpoint (no weights read)."""
    _, json_path = checkpoint_paths(stem)
    if not json_path.is_file():
        raise FileNotFoundError(f"checkpoint config not found: {json_path}")
    try:
        document = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"checkpoint config {json_path} is not valid JSON: {err}") from err
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f'{json_path} is not an hrm checkpoint (missing "format": "{FORMAT}")')
    if document.get("version") != VERSION:
        raise ValueError(
            f"{json_path} has checkpoint version {document.get('version')!r}; "
            f"this hrm reads version {VERSION}"
        )
    unknown = sorted(set(document) - {"format", "version", "task", "config", "meta"})
    if unknown:
        raise ValueError(f"{json_path} has unknown top-level key(s) {unknown}")
    if not isinstance(document.get("meta", {}), dict):
        raise ValueError(f'{json_path}: "meta" must be a JSON object')
    return document


def load_checkpoint(
    stem: str | os.PathLike[str], map_location: torch.device | str = "cpu"
) -> tuple[HRM, HRMConfig, dict[str, Any]]:
    """Rebuild the model saved under ``stem``.

    Returns:
        ``(model, config, meta)``: the model in eval mode on ``map_location`` with float32
        parameters, its config, and the meta dict with ``"task"`` added.

    Raises:
        FileNotFoundError: if the weights or the JSON file is missing.
        ValueError: if either file is corrupt, the config is invalid or has unknown keys, or
            the weights do not fit the config (the first mismatching tensor is named).
    """
    weights_path, json_path = checkpoint_paths(stem)
    document = read_checkpoint_json(stem)
    try:
        config = HRMConfig.from_dict(document.get("config"))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{json_path}: bad model config: {err}") from err
    if not weights_path.is_file():
        raise FileNotFoundError(f"checkpoint weights not found: {weights_path}")
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise ValueError(f"checkpoint weights {weights_path} are corrupt: {err}") from err

    # Built on the meta device: nothing is initialised, the weights come from the file.
    with torch.device("meta"):
        model = HRM(config)
    expected = model.state_dict()
    for name, ref in expected.items():
        if name not in tensors:
            raise ValueError(
                f"{weights_path} does not match its config: tensor {name!r} "
                f"(shape {tuple(ref.shape)}) is missing"
            )
        if tuple(tensors[name].shape) != tuple(ref.shape):
            raise ValueError(
                f"{weights_path} does not match its config: tensor {name!r} has shape "
                f"{tuple(tensors[name].shape)}, the config needs {tuple(ref.shape)}"
            )
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise ValueError(
            f"{weights_path} does not match its config: unexpected tensor {extra[0]!r}"
            + (f" and {len(extra) - 1} more" if len(extra) > 1 else "")
        )
    for name, tensor in tensors.items():
        # A NaN or Inf weight would make every answer garbage without any error: refuse it.
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise ValueError(
                f"{weights_path} is unusable: tensor {name!r} holds {bad} non-finite "
                "value(s) (NaN or Inf): the file is corrupt, or was saved from a run that "
                "diverged"
            )
    state = {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}
    model.load_state_dict(state, assign=True)
    if model.rotary is not None:
        # Non-persistent buffers (the RoPE tables) are not in the file: rebuild them for real.
        model.rotary = Rotary(config.head_dim, config.total_seq_len, config.rope_theta)
    if model.output_allowed is not None:  # so is the output mask, derived from the config
        model.output_allowed = output_table(config)
    if model.wall_table is not None:  # and the max aggregation's walls
        model.wall_table = wall_table(config)
    model = model.to(torch.device(map_location))
    model.eval()
    meta = dict(document.get("meta") or {})
    meta["task"] = document.get("task")
    return model, config, meta


def save_trainer_state(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Atomically write a trainer-state dict (tensors, numbers, strings, nested containers).

    Raises:
        WriteError: naming ``path`` when it cannot be written (an earlier state is kept).
    """
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_trainer_state(
    path: str | os.PathLike[str], map_location: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Read a trainer state with ``weights_only=True`` (no arbitrary objects unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trainer state not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"trainer state {path} is corrupt or unsafe to load: {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"trainer state {path} must hold a dict, got {type(state).__name__}")
    return state
