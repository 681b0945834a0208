"""Per-task training recipes: what ``hrm train TASK`` does when no recipe flag is given.

Each recipe is the best configuration measured on this project's 2-core CPU (the README's
results tables give the runs and their commands). ``hrm train TASK`` starts from the task's
recipe unless ``--preset`` is given, in which case the preset and the generic defaults of
:class:`~hrm_agent.training.options.TrainConfig` apply (a user who names a preset wants that
model). Explicit flags override either.

Recipes are plain data: a preset name, model overrides and TrainConfig field values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _maze_output_choices() -> tuple[tuple[int, ...], ...] | None:
    from hrm_env.puzzles.tasks import get_task  # numpy only

    return get_task("maze").output_choices


__all__ = ["Recipe", "RECIPES", "recipe_for", "describe_recipes"]


@dataclass(frozen=True)
class Recipe:
    """A task's measured default training configuration."""

    preset: str
    """HRM preset the model starts from."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """HRMConfig fields changed on top of the preset."""
    train: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields (optimisation, data, schedule)."""
    source: str = ""
    """Where the figures behind this recipe are (README section)."""


# The candidate grid, N=1 (answers and Q values after every cycle, as the envs read them),
# last-cycle gradient, warmup then cosine decay: what the README's "9x9 Sudoku" section
# measured and the shipped `sudoku` checkpoint was trained with.
_SUDOKU_MODEL = {
    "mixer": "candidates",
    "expansion": 2.0,
    "multiple_of": 16,
    "h_layers": 2,
    "l_layers": 2,
    "h_cycles": 1,
    "l_cycles": 2,
    "loss": "softmax",
    "gradient": "last-cycle",
}

RECIPES: dict[str, Recipe] = {
    "sudoku": Recipe(
        preset="tiny",
        overrides={**_SUDOKU_MODEL, "hidden_size": 288, "max_segments": 16},
        train={
            "difficulty": "easy:0.2,medium:0.4,hard:0.4",
            "batch_size": 64,
            "lr": 2e-3,
            "lr_warmup_steps": 100,
            "lr_schedule": "cosine",
            "lr_min_ratio": 0.05,
            "steps": 7000,
            "q_bootstrap": "delayed",
            "eval_difficulty": "easy,medium,hard",
            "eval_size": 256,
            "eval_every": 500,
            "checkpoint_every": 100,
        },
        source="README, Results, 9x9 Sudoku on two CPU cores",
    ),
    "sudoku-mini": Recipe(
        preset="tiny",
        overrides={**_SUDOKU_MODEL, "hidden_size": 64, "max_segments": 8},
        train={
            "difficulty": "hard",
            "batch_size": 64,
            "lr": 3e-3,
            "lr_warmup_steps": 50,
            "lr_schedule": "cosine",
            "lr_min_ratio": 0.05,
            "steps": 600,
            "q_bootstrap": "delayed",
        },
        source="tests/agent/test_train.py::test_hrm_train_with_no_recipe_flags_learns_mini_sudoku",
    ),
    "maze": Recipe(
        preset="tiny",
        overrides={
            "mixer": "conv",
            "hidden_size": 64,
            "num_heads": 2,
            "expansion": 2.0,
            "multiple_of": 16,
            "h_layers": 2,
            "l_layers": 2,
            "h_cycles": 1,
            "l_cycles": 3,
            "max_segments": 24,
            "loss": "softmax",
            "gradient": "last-cycle",
            # The output mask: an open cell decides path or not; walls, S and G are copied.
            "output_choices": _maze_output_choices(),
            # Training only: a second head says, per cell, whether it is on some shortest
            # path (maze-OP against maze-E and maze-E-s1, equal schedules).
            "aux_target": "on-path",
            "aux_classes": 2,
        },
        train={
            "difficulty": "easy:0.3,medium:0.4,hard:0.3",
            "targets": "closest",
            "batch_size": 16,
            "lr": 2e-3,
            "lr_warmup_steps": 100,
            "lr_schedule": "cosine",
            "lr_min_ratio": 0.05,
            "weight_decay": 0.05,
            "grad_clip": 1.0,
            "steps": 9000,
            # The average of the weights steadies the readings (maze-E against maze-L).
            "ema": 0.999,
            "q_bootstrap": "delayed",
            "eval_difficulty": "easy,medium,hard",
            "eval_size": 256,
            "eval_every": 1500,
            "checkpoint_every": 250,
        },
        source="docs/RESULTS.md, Mazes, Training-signal experiments (runs P, maze-L, maze-E, maze-OP)",
    ),
}
"""The recipe of each task."""


def recipe_for(task: str) -> Recipe:
    """The recipe of ``task``; ValueError naming the known tasks otherwise."""
    if task not in RECIPES:
        raise ValueError(f"no training recipe for task {task!r}; known: {', '.join(RECIPES)}")
    return RECIPES[task]


def describe_recipes() -> str:
    """One line per task, for ``hrm train --help``."""
    lines = []
    for task, r in RECIPES.items():
        o, t = r.overrides, r.train
        model = f"{r.preset} preset, mixer {o.get('mixer')}, hidden {o.get('hidden_size')}"
        lines.append(
            f"{task}: {model}, N={o.get('h_cycles')} T={o.get('l_cycles')}, "
            f"{o.get('max_segments')} segments, {t.get('difficulty')}, batch "
            f"{t.get('batch_size')}, lr {t.get('lr')} (warmup {t.get('lr_warmup_steps')}, "
            f"{t.get('lr_schedule')}), {t.get('steps')} steps, gradient "
            f"{o.get('gradient', 'one-step')}, Q bootstrap {t.get('q_bootstrap')}"
            + (", output mask" if o.get("output_choices") else "")
            + (f", {o['aux_target']} auxiliary target" if o.get("aux_target") else "")
            + (f", {t['targets']} targets" if t.get("targets") else "")
            + (f", weight decay {t['weight_decay']}" if "weight_decay" in t else "")
            + (f", grad clip {t['grad_clip']}" if t.get("grad_clip") else "")
            + (f", EMA of the weights {t['ema']}" if t.get("ema") else "")
            + (f", held-out eval on {t['eval_difficulty']}" if t.get("eval_difficulty") else "")
        )
    return "\n".join(lines)
