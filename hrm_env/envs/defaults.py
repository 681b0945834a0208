"""What an env, ``hrm watch`` and the examples do when they are not told: one table.

With no ``difficulty`` the envs draw from the tier in :data:`DEFAULT_TIERS`, the hardest tier
the shipped model of the task is rated on (``docs/RESULTS.md`` has its figures), so that a
first ``gym.make("HRM-Sudoku-v0")`` shows what the model really does on puzzles it was built
for. The tasks' own defaults (9x9 Sudoku: ``extreme``, the benchmark bank) stay one argument
away: ``difficulty="extreme"``.

With no ``max_cycles`` an env runs up to the model's own limit (N x max_segments of its
config, :func:`cycle_limit`), the horizon it was trained to use; ``hrm eval`` and ``hrm watch``
use the same limit.

Reading a limit needs no torch: it comes from the checkpoint's JSON, or from the model of a
reasoner that was passed in.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from hrm_env.envs.reasoner import model_cycle_limit

__all__ = ["DEFAULT_TIERS", "FALLBACK_CYCLES", "cycle_limit", "default_tier"]

#: Task -> the tier drawn when none is given: the hardest one its shipped model is rated on.
DEFAULT_TIERS: dict[str, str] = {"sudoku": "hard", "sudoku-mini": "hard", "maze": "hard"}

#: The cycle limit of a reasoner that does not say (a script, a custom model without a config).
FALLBACK_CYCLES = 16


def default_tier(task: str) -> str | None:
    """The tier an env or viewer draws from for ``task`` when given none (None: the task's
    own default)."""
    return DEFAULT_TIERS.get(task)


def _shipped_stem(task: str) -> Path | None:
    # Found without importing hrm_agent (or torch): only the package's folder is looked up.
    spec = importlib.util.find_spec("hrm_agent")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "checkpoints" / task


def _json_limit(stem: str | os.PathLike[str]) -> int | None:
    path = Path(os.fspath(stem))
    if path.suffix in (".json", ".safetensors"):  # a file of the pair names its stem too
        path = path.with_suffix("")
    path = path.with_name(path.name + ".json")
    try:
        config = json.loads(path.read_text())["config"]
        return int(config["h_cycles"]) * int(config["max_segments"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def cycle_limit(
    task: str, reasoner: Any = None, checkpoint: str | os.PathLike[str] | None = None
) -> int:
    """The cycles the model behind an env was trained to run, N x max_segments.

    Args:
        task: the task name.
        reasoner: a reasoner passed to the env; its model's config says (a reasoner without
            one gets :data:`FALLBACK_CYCLES`).
        checkpoint: a checkpoint stem passed to the env; its JSON says.

    Without either, the shipped checkpoint's JSON says; :data:`FALLBACK_CYCLES` when nothing
    can be read (a missing or unreadable file is reported later, when the model loads).
    """
    if reasoner is not None:
        return model_cycle_limit(reasoner, FALLBACK_CYCLES)
    stem = checkpoint if checkpoint is not None else _shipped_stem(task)
    limit = None if stem is None else _json_limit(stem)
    return FALLBACK_CYCLES if limit is None else limit
