"""What defines a training run: :class:`TrainConfig`, its checks, and the run's constants.

Owns every option of a run (one frozen dataclass, a docstring per field, checked once when it
is built), the fields a run may override on its model preset and those a resumption may change,
and :class:`TrainResult`. Must not touch torch state, files (beyond reading an ``init_from``
checkpoint's JSON), the command line or the training loop.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrm_agent.checkpoint import checkpoint_paths, read_checkpoint_json
from hrm_agent.config import PRESETS, HRMConfig
from hrm_agent.losses import SEGMENT_WEIGHTINGS
from hrm_agent.training.data import parse_difficulty_mix
from hrm_env.puzzles.tasks import TASK_NAMES, get_task

__all__ = [
    "CHECKPOINT_STEM",
    "LR_SCHEDULES",
    "MODEL_OVERRIDE_FIELDS",
    "Q_BOOTSTRAPS",
    "RESUMABLE_CHANGES",
    "TARGET_RULES",
    "TRAIN_HALTINGS",
    "TrainConfig",
    "TrainResult",
]

CHECKPOINT_STEM = "model"
"""File stem of the checkpoint in ``out_dir`` (``model.safetensors``, ``model.json``, ...)."""
LR_SCHEDULES = ("constant", "cosine")
Q_BOOTSTRAPS = ("next-segment", "delayed")
TARGET_RULES = ("fixed", "closest")
TRAIN_HALTINGS = ("q", "max")
MODEL_OVERRIDE_FIELDS = (
    "hidden_size",
    "num_heads",
    "expansion",
    "multiple_of",
    "h_layers",
    "l_layers",
    "h_cycles",
    "l_cycles",
    "max_segments",
    "gradient",
    "mixer",
    "conv_kernel",
    "conv_dilations",
    "loss",
    "rope_theta",
    "rms_norm_eps",
    "q_bias_init",
    "compute_dtype",
    "conv_mix",
    "zero_init_residual",
    "output_choices",
    "max_aggregation",
    "closed_walls",
    "aux_target",
    "aux_classes",
)
"""HRMConfig fields a run may override on top of its preset (vocab_size and seq_len come from
the task, halt_exploration and ema from the TrainConfig)."""
# Fields that may differ between a run and its resumption: they change how a run is watched or
# where it runs, not the sequence of updates.
RESUMABLE_CHANGES = frozenset(
    {
        "steps",
        "eval_every",
        "eval_size",
        "checkpoint_every",
        "log_every",
        "out_dir",
        "device",
        "compile",
        "progress",
        "eval_difficulty",
    }
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (parsed once from the command line)."""

    task: str = "sudoku"
    """Task name: ``sudoku``, ``sudoku-mini`` or ``maze``."""
    preset: str = "small"
    """HRM preset: ``tiny``, ``small`` or ``paper``."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """HRMConfig fields to change on top of the preset (e.g. ``{"h_cycles": 1}``); see
    ``MODEL_OVERRIDE_FIELDS``."""
    difficulty: str | None = None
    """Tier of the training puzzles (None: the task's default tier), or a mix of tiers with
    weights, ``easy:0.5,medium:0.5`` (each new puzzle's tier is drawn with those odds)."""
    train_size: int | None = None
    """None: stream fresh augmented puzzles. An int N: draw N puzzles once with the seed and
    augment them on the fly (the paper's small-sample regime uses 1000)."""
    batch_size: int = 64
    """Global batch B: puzzles in flight at once (split evenly over DDP ranks)."""
    lr: float = 1e-4
    """Peak learning rate of AdamW."""
    lr_warmup_steps: int = 100
    """Steps of linear warmup from 0 to ``lr``."""
    lr_schedule: str = "constant"
    """After warmup: ``constant`` (the reference Sudoku setting) or ``cosine`` to
    ``lr_min_ratio * lr`` at ``steps``."""
    lr_min_ratio: float = 0.1
    """Final fraction of ``lr`` for the cosine schedule."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay (on every parameter, as the reference code does)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    grad_clip: float = 0.0
    """Clip the global gradient norm to this value; 0 = no clipping (the paper clips none)."""
    steps: int = 1000
    """Training steps; one step = one segment for every puzzle in the batch."""
    q_bootstrap: str = "next-segment"
    """Target of q_continue: ``next-segment`` (the paper's code: run one more segment without
    gradient just to read its Q values, a third more compute per step) or ``delayed``: the
    puzzle's own next training step supplies those Q values one step later, and the Q head
    (only the head, from the stored prefix state) is fitted to them then, at no extra cost.
    Puzzles that halted have no next step and give no q_continue loss."""
    q_step_cost: float = 0.0
    """Taken off the bootstrapped value of continuing in q_continue's target (0: the paper's
    targets; see :func:`hrm_agent.losses.q_targets`). The halting env charges the same cost for
    each continue. Without it a solved puzzle is worth as much continued as halted, and a
    q_continue bootstrapped from the head itself can drift above q_halt, so the head stops
    halting."""
    targets: str = "fixed"
    """Which correct answer a puzzle with several is supervised with: ``fixed`` (the one its
    data holds, e.g. the maze solver's tie-break) or ``closest``: each step, the correct answer
    nearest the model's own (for mazes, the shortest path its log-odds favour most, see
    :meth:`~hrm_env.puzzles.tasks.Task.closest_targets`). With ``closest`` a model that marks
    any shortest path is right, as the checker says, and its Q head learns that. Tasks with one
    answer per puzzle (Sudoku) are the same under both."""
    aux_weight: float = 1.0
    """Weight of the auxiliary target's loss (only for a model with ``aux_target``)."""
    segment_weighting: str = "uniform"
    """Weight of each segment's cell loss by its index (:func:`hrm_agent.losses.segment_weights`):
    ``uniform`` (the paper's deep supervision) or ``linear`` (later segments count more)."""
    halt_exploration_prob: float = 0.1
    """Probability that a puzzle draws a random minimum segment count in [2, max_segments]."""
    train_halting: str = "q"
    """When a training puzzle leaves the batch: ``q`` (ACT, the paper's: when its Q head says
    halt, after its minimum) or ``max``: always after ``max_segments``, so every segment index
    is trained as often; the Q head is still fitted on every segment (off-policy, the same
    targets), it just does not decide. With ``max`` the first batch starts at staggered segment
    counts so that puzzles keep leaving at different steps."""
    carry_noise: float = 0.0
    """Std of Gaussian noise added to ``z_H`` and ``z_L`` of the carry entering every segment
    after a puzzle's first (0 = off): the noise ``samples > 1`` adds at inference
    (:mod:`hrm_agent.sampling`), here on every puzzle, so that the model learns to reason from
    a perturbed state and noisy trajectories are ones it was trained on."""
    ema: float = 0.0
    """Decay of an exponential moving average of the weights (0 = off). When on, evaluation
    and checkpoints use the EMA weights."""
    eval_every: int = 0
    """Evaluate on the test set every this many steps (0: only at the end)."""
    eval_size: int | None = 512
    """Test puzzles per evaluation (the first ones of ``task.test_set()``; None: all), or per
    tier with ``eval_difficulty``."""
    eval_difficulty: str | None = None
    """Comma-separated tiers to evaluate on instead of the bundled test set: ``eval_size``
    fresh puzzles of each, drawn once from a stream seeded apart from the training data.
    ``eval.csv`` then has one row per tier and evaluation."""
    init_from: str | None = None
    """Checkpoint stem to start from (weights only, with a fresh optimizer and schedule). Its
    config is the model's, with ``overrides`` on top; its lineage is carried on."""
    checkpoint_every: int = 0
    """Write the checkpoint and trainer state every this many steps (0: only at the end)."""
    out_dir: str = "runs/hrm"
    """Folder for the checkpoint, trainer state and logs."""
    seed: int = 0
    """Seed of the weights and of every random draw of the run."""
    device: str = "auto"
    """Torch device (``auto``: CUDA when available, else CPU; under torchrun with CUDA each
    rank takes ``cuda:LOCAL_RANK``)."""
    compile: bool = False
    """``torch.compile`` the recurrent modules."""
    log_every: int = 10
    """Write a CSV/TensorBoard row every this many steps."""
    progress: bool = True
    """Show a tqdm progress bar (only ever on a TTY, on rank 0)."""

    def __post_init__(self) -> None:
        if self.task not in TASK_NAMES:
            raise ValueError(f"unknown task {self.task!r}; known tasks: {', '.join(TASK_NAMES)}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known presets: {sorted(PRESETS)}")
        unknown = sorted(set(self.overrides) - set(MODEL_OVERRIDE_FIELDS))
        if unknown:
            raise ValueError(
                f"cannot override model field(s) {unknown}; allowed: {list(MODEL_OVERRIDE_FIELDS)}"
            )
        if self.difficulty is not None:
            task = get_task(self.task)
            held_out = [
                t for t, _ in parse_difficulty_mix(task, self.difficulty) if t in task.test_tiers
            ]
            if held_out:
                raise ValueError(
                    f"difficulty {held_out[0]!r} draws from held-out test puzzles and cannot be "
                    "trained on; train on the generated tiers or 'extreme' (the train bank)"
                )
        if self.eval_difficulty is not None:
            for tier in self.eval_tiers:
                get_task(self.task).check_difficulty(tier)
                if tier == "extreme":
                    raise ValueError(
                        "eval_difficulty 'extreme' would draw from the training bank; evaluate "
                        "extreme puzzles on the bundled test set (leave eval_difficulty unset)"
                    )
        for name in ("batch_size", "steps", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("lr_warmup_steps", "eval_every", "checkpoint_every", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        for name in ("train_size", "eval_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be None or a positive int, got {value!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.targets not in TARGET_RULES:
            raise ValueError(f"targets must be one of {TARGET_RULES}, got {self.targets!r}")
        if not (self.aux_weight >= 0 and math.isfinite(self.aux_weight)):
            raise ValueError(f"aux_weight must be a number >= 0, got {self.aux_weight!r}")
        if self.segment_weighting not in SEGMENT_WEIGHTINGS:
            raise ValueError(
                f"segment_weighting must be one of {SEGMENT_WEIGHTINGS}, got "
                f"{self.segment_weighting!r}"
            )
        if self.q_bootstrap not in Q_BOOTSTRAPS:
            raise ValueError(f"q_bootstrap must be one of {Q_BOOTSTRAPS}, got {self.q_bootstrap!r}")
        if not (math.isfinite(self.q_step_cost) and 0.0 <= self.q_step_cost < 1.0):
            raise ValueError(f"q_step_cost must be a number in [0, 1), got {self.q_step_cost!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0.0 <= self.lr_min_ratio <= 1.0:
            raise ValueError(f"lr_min_ratio must lie in [0, 1], got {self.lr_min_ratio!r}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("weight_decay and grad_clip must be >= 0")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not 0.0 <= self.halt_exploration_prob <= 1.0:
            raise ValueError(
                f"halt_exploration_prob must lie in [0, 1], got {self.halt_exploration_prob!r}"
            )
        if self.train_halting not in TRAIN_HALTINGS:
            raise ValueError(
                f"train_halting must be one of {TRAIN_HALTINGS}, got {self.train_halting!r}"
            )
        if not (math.isfinite(self.carry_noise) and self.carry_noise >= 0):
            raise ValueError(f"carry_noise must be a finite number >= 0, got {self.carry_noise!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must lie in [0, 1) (0 = off), got {self.ema!r}")
        if self.init_from is None or checkpoint_paths(self.init_from)[1].is_file():
            # Invalid overrides (or a checkpoint of another task) fail now, not after the
            # data is generated. A missing init_from checkpoint fails when a fresh run starts;
            # a resumed run takes the model config saved in its state and needs it no more.
            self.model_config()

    @property
    def eval_tiers(self) -> tuple[str, ...]:
        """The tiers of ``eval_difficulty`` (empty: evaluate on the bundled test set)."""
        if self.eval_difficulty is None:
            return ()
        tiers = tuple(t.strip() for t in self.eval_difficulty.split(",") if t.strip())
        if not tiers:
            raise ValueError(f"eval_difficulty names no tier: {self.eval_difficulty!r}")
        return tiers

    def model_config(self) -> HRMConfig:
        """The HRMConfig this run trains: preset (or the ``init_from`` checkpoint's config) +
        task sizes + overrides + ACT/EMA settings."""
        task = get_task(self.task)
        if self.init_from is not None:
            document = read_checkpoint_json(self.init_from)
            if document.get("task") not in (None, self.task):
                raise ValueError(
                    f"--init-from {self.init_from} holds a {document.get('task')!r} model, "
                    f"not {self.task!r}"
                )
            base = HRMConfig.from_dict(document["config"])
            return base.replace(
                halt_exploration=self.halt_exploration_prob, ema=self.ema, **dict(self.overrides)
            )
        return HRMConfig.preset(
            self.preset,
            vocab_size=task.vocab_size,
            seq_len=task.seq_len,
            halt_exploration=self.halt_exploration_prob,
            ema=self.ema,
            **dict(self.overrides),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        data = dataclasses.asdict(self)
        data["overrides"] = dict(self.overrides)
        data["betas"] = list(self.betas)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys raise ``ValueError``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig key(s) {unknown}")
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        if "overrides" in data:
            data["overrides"] = dict(data["overrides"])
        return cls(**data)


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run reports."""

    step: int
    """Steps done in total."""
    checkpoint: Path
    """Stem of the checkpoint written (``out_dir/model``)."""
    eval: dict[str, Any] | None
    """Summary of the final evaluation (``EvalResult.to_json``), None if not evaluated."""
    minutes: float
    """Training wall time over all resumptions, evaluation excluded."""
