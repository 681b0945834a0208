"""Training an HRM: deep supervision over segments with Q-learning halting (ACT), and ``hrm train``.

The loop follows the paper (arXiv 2506.21734, Sec. "Deep supervision" and "Adaptive
computational time") and the structure of its reference code, rewritten:

* a **persistent batch** of B puzzles, each with its recurrent carry and a segment counter;
* every training step runs **one segment** for every puzzle (``model(carry, tokens)``; the
  carry comes back detached, so no gradient crosses segments), computes the loss of that
  segment against the answers and takes one AdamW step (deep supervision);
* the Q head learns when to halt: q_halt against "this segment's answer is fully correct",
  q_continue against the Q values of the *next* segment, computed under ``no_grad`` from the
  new carry (no replay buffer or target network; the batch of parallel puzzles plays that role);
* after the step each puzzle **halts** when it has run ``max_segments`` segments, or when
  ``q_halt > q_continue`` and it has run at least its minimum; the minimum is 1, except that
  with probability ``halt_exploration_prob`` (drawn once per puzzle when it enters the batch)
  it is uniform in [2, max_segments] (exploration). Halted puzzles are replaced in place by
  fresh ones (new tokens, carry rows back to the initial state).

Data: by default fresh augmented puzzles are streamed from ``task.sample``; with
``train_size=N`` a fixed set of N puzzles is drawn once with the seed and augmented on the fly
(the paper's small-sample regime, e.g. 1000 Sudoku-Extreme puzzles).

Learning rate: linear warmup over ``lr_warmup_steps``, then constant (the reference code's
Sudoku setting, ``lr_min_ratio = 1``) or a cosine decay to ``lr_min_ratio * lr`` at ``steps``.

Distributed (``torchrun``): the *global* batch and every random draw (puzzles, exploration) are
made identically on every rank from one seeded ``np.random.Generator``; each rank runs the
model on its contiguous slice of rows, halting decisions are all-gathered, and gradients are
summed (each rank's loss is its rows' share of the global mean). A 2-process run therefore
matches a 1-process run with the same global batch up to float rounding. Only rank 0 logs,
evaluates and writes files.

Reproducibility: the trainer state (``out_dir/model.trainer.pt``) holds the float32 weights,
optimizer, step, the whole batch (tokens, answers, segment counters, minimums), the carry, the
data pool and all RNG states, so ``--resume`` continues bit for bit: N steps + resume + N
steps gives the same weights as 2N straight.

Files in ``out_dir``: ``model.safetensors`` + ``model.json`` (the checkpoint; EMA weights when
EMA is on), ``model.trainer.pt``, ``train.csv``, ``eval.csv``, ``tb/`` (TensorBoard).

Shapes: B global batch, b = B / world_size rows per rank, S cells, L = 1 + S positions,
D hidden.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from hrm_agent.checkpoint import (
    checkpoint_paths,
    load_checkpoint,
    load_trainer_state,
    read_checkpoint_json,
    save_checkpoint,
    save_trainer_state,
)
from hrm_agent.config import COMPUTE_DTYPES, CONV_MIXES, MIXERS, PRESETS, HRMConfig
from hrm_agent.devices import resolve_device
from hrm_agent.evaluate import EvalResult, evaluate
from hrm_agent.losses import (
    SEGMENT_WEIGHTINGS,
    aux_loss,
    hrm_loss,
    q_targets,
    segment_weights,
)
from hrm_agent.model import HRM, Carry
from hrm_agent.recipes import describe_recipes, recipe_for
from hrm_env.puzzles.tasks import TASK_NAMES, PuzzleBatch, Task, get_task

__all__ = [
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "train",
    "add_arguments",
    "run",
    "CHECKPOINT_STEM",
    "lineage_totals",
    "ran_on_cpu",
    "sample_mix",
]

CHECKPOINT_STEM = "model"
"""File stem of the checkpoint in ``out_dir`` (``model.safetensors``, ``model.json``, ...)."""
TRAINER_STATE_FORMAT = "hrm-trainer-state"
TRAINER_STATE_VERSION = 1
LR_SCHEDULES = ("constant", "cosine")
Q_BOOTSTRAPS = ("next-segment", "delayed")
TARGET_RULES = ("fixed", "closest")
EVAL_SEED = 20261130
"""Seed of the held-out tier sets of ``eval_difficulty`` (with a hash of the tier name)."""
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
    "conv_mix",
    "zero_init_residual",
    "loss",
    "rope_theta",
    "rms_norm_eps",
    "q_bias_init",
    "compute_dtype",
    "output_choices",
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
            parse_difficulty_mix(get_task(self.task), self.difficulty)
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


# ---------------------------------------------------------------------- distributed helpers
@dataclass(frozen=True)
class _World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _init_world(device_name: str) -> tuple[_World, torch.device, bool]:
    """Join the torchrun process group when launched by torchrun; pick this rank's device.

    Returns:
        (world, device, whether this call created the process group).
    """
    size = int(os.environ.get("WORLD_SIZE", "1"))
    device_name = str(resolve_device(device_name))
    created = False
    if size > 1:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = device_name.startswith("cuda")
        if cuda:
            device_name = f"cuda:{local_rank}"
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if cuda else "gloo")
            created = True
        world = _World(dist.get_rank(), dist.get_world_size(), local_rank)
    else:
        world = _World()
    return world, torch.device(device_name), created


def parse_difficulty_mix(task: Task, text: str) -> list[tuple[str, float]]:
    """``"medium"`` -> ``[("medium", 1.0)]``; ``"easy:1,hard:3"`` -> ``[("easy", 0.25),
    ("hard", 0.75)]``. Raises ValueError naming the bad part."""
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, sep, weight_text = part.strip().partition(":")
        task.check_difficulty(name.strip())
        try:
            weight = float(weight_text) if sep else 1.0
        except ValueError:
            raise ValueError(
                f"bad difficulty mix {text!r}: weight {weight_text!r} of {name!r} is not a number"
            ) from None
        if not (weight > 0 and math.isfinite(weight)):
            raise ValueError(f"bad difficulty mix {text!r}: weight of {name!r} must be > 0")
        if name.strip() in mix:
            raise ValueError(f"bad difficulty mix {text!r}: {name!r} appears twice")
        mix[name.strip()] = weight
    total = sum(mix.values())
    return [(name, weight / total) for name, weight in mix.items()]


def sample_mix(
    task: Task, mix: list[tuple[str, float]] | None, rng: np.random.Generator, n: int
) -> PuzzleBatch:
    """``n`` fresh puzzles, each tier's share drawn from ``mix`` (as
    :func:`parse_difficulty_mix` gives it; None: the task's default tier), in random order."""
    if mix is None or len(mix) == 1:
        return task.sample(rng, n, None if mix is None else mix[0][0])
    counts = rng.multinomial(n, [weight for _, weight in mix])
    parts = [task.sample(rng, int(k), tier) for (tier, _), k in zip(mix, counts, strict=True) if k]
    return PuzzleBatch.concat(parts)[rng.permutation(n)]


class _PuzzleSource:
    """Where training puzzles come from: a fresh stream, or a fixed pool augmented on the fly."""

    def __init__(self, task: Task, difficulty: str | None, pool: PuzzleBatch | None) -> None:
        self.task = task
        self.difficulty = difficulty
        self.mix = None if difficulty is None else parse_difficulty_mix(task, difficulty)
        self.pool = pool

    @classmethod
    def create(
        cls, task: Task, difficulty: str | None, train_size: int | None, rng: np.random.Generator
    ) -> _PuzzleSource:
        source = cls(task, difficulty, None)
        if train_size is not None:
            source.pool = source._sample(rng, train_size)
        return source

    def _sample(self, rng: np.random.Generator, n: int) -> PuzzleBatch:
        return sample_mix(self.task, self.mix, rng, n)

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` (inputs, targets) rows, (n, S) uint8 each."""
        if n == 0:
            empty = np.zeros((0, self.task.seq_len), dtype=np.uint8)
            return empty, empty.copy()
        if self.pool is None:
            batch = self._sample(rng, n)
            return batch.inputs, batch.targets
        rows = rng.integers(0, len(self.pool), size=n)
        return self.task.augment(rng, self.pool.inputs[rows], self.pool.targets[rows])


@dataclass
class _Batch:
    """The persistent global batch, kept identical on every rank (numpy, host memory)."""

    inputs: np.ndarray  # (B, S) uint8
    targets: np.ndarray  # (B, S) uint8
    segments: np.ndarray  # (B,) int64: segments run on the current puzzle
    min_segments: np.ndarray  # (B,) int64: exploration minimum of the current puzzle


# ---------------------------------------------------------------------- the trainer
class Trainer:
    """One training run. Build it, then call :meth:`fit`; see the module docstring.

    Args:
        config: the run.
        resume: continue from ``out_dir``'s trainer state instead of starting afresh.
        task: the task object to draw puzzles from and score answers with (default:
            ``get_task(config.task)``); must carry the name ``config.task``. Tests inject a
            variant here (e.g. easier puzzles of the same domain).
    """

    def __init__(self, config: TrainConfig, resume: bool = False, task: Task | None = None) -> None:
        self.config = config
        self.task = get_task(config.task) if task is None else task
        if self.task.name != config.task or self.task.seq_len != get_task(config.task).seq_len:
            raise ValueError(
                f"the given task {self.task.name!r} does not match config.task {config.task!r}"
            )
        self.world, self.device, self._owns_group = _init_world(config.device)
        self._fit_finished = False
        try:
            self._build(resume)
        except BaseException:
            self.close()  # leave the process group this call may have joined
            raise

    def _build(self, resume: bool) -> None:
        """The rest of ``__init__``: model, optimizer, data and state (or resumed state)."""
        config = self.config
        if config.batch_size % self.world.size:
            raise ValueError(
                f"batch_size {config.batch_size} must be divisible by the number of "
                f"processes ({self.world.size})"
            )
        self.out_dir = Path(config.out_dir)
        self.stem = self.out_dir / CHECKPOINT_STEM
        self.state_path = self.out_dir / f"{CHECKPOINT_STEM}.trainer.pt"
        if not resume and self.state_path.exists():
            raise ValueError(
                f"{self.out_dir} already holds a training run; pass --resume to continue it "
                "or choose another --out-dir"
            )
        b = config.batch_size // self.world.size
        self.rows = slice(self.world.rank * b, (self.world.rank + 1) * b)

        # Resuming reads the trainer state once, up front: it also holds the model config, so
        # a run started --init-from a checkpoint resumes without that checkpoint.
        state = self._read_state() if resume else None
        if state is not None and state.get("model_config") is not None:
            model_config = HRMConfig.from_dict(json.loads(state["model_config"]))
        else:
            model_config = config.model_config()
        # Weights from a seeded generator: every rank builds the same model without touching
        # the global torch RNG.
        init = torch.Generator().manual_seed(config.seed)
        self.model = HRM(model_config, generator=init).to(self.device)
        self.model.train()
        if self.device.type == "cuda" and model_config.compute_dtype == "float32":
            # float32 means float32: no TF32 in matmuls or convolutions either.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        if config.compile:
            self.model.enable_compile()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            betas=tuple(config.betas),
            weight_decay=config.weight_decay,
        )
        self.step = 0
        self.train_seconds = 0.0
        self.cpu_seconds = 0.0
        self.last_eval: dict[str, Any] | None = None
        self.tier_evals: dict[str, dict[str, Any]] = {}
        # The runs this one continues (--init-from), oldest first: carried into every save.
        self.parent_lineage: list[dict[str, Any]] = []
        if config.init_from is not None and not resume:
            self._init_weights_from(config.init_from)
        self.ema_state: dict[str, torch.Tensor] | None = None
        if config.ema > 0:  # the average starts at the weights training starts from
            self.ema_state = {k: v.detach().clone() for k, v in self.model.named_parameters()}

        self.q_prefix: torch.Tensor | None = None  # q_bootstrap="delayed": (b, D) or None
        self.q_prefix_valid: torch.Tensor | None = None  # (b,) bool
        if state is not None:
            self._load_state(state)
        else:
            # The data stream is seeded apart from the weights (seed + 1) so that the same
            # weights can be trained on different data by changing nothing else.
            self.rng = np.random.default_rng([config.seed, 1])
            self.source = _PuzzleSource.create(
                self.task, config.difficulty, config.train_size, self.rng
            )
            inputs, targets = self.source.draw(self.rng, config.batch_size)
            self.batch = _Batch(
                inputs=np.array(inputs, dtype=np.uint8),
                targets=np.array(targets, dtype=np.uint8),
                segments=np.zeros(config.batch_size, dtype=np.int64),
                min_segments=self._draw_min_segments(config.batch_size),
            )
            self.carry = self.model.initial_carry(b, self.device)
        self._eval_sets: dict[str, PuzzleBatch] | None = None
        self._logger: _Logger | None = None

    def _init_weights_from(self, stem: str) -> None:
        """Start from a checkpoint's weights (fresh optimizer) and inherit its lineage."""
        source, _, meta = load_checkpoint(stem, map_location=self.device)
        try:
            self.model.load_state_dict(source.state_dict())
        except RuntimeError as err:
            raise ValueError(f"--init-from {stem} does not fit this run's model: {err}") from err
        lineage = list(meta.get("lineage") or [])
        if not lineage:
            # A checkpoint from before lineage was recorded: describe it from its summary.
            lineage = [
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
        self.parent_lineage = lineage

    def lineage(self) -> list[dict[str, Any]]:
        """Every run these weights were trained in, oldest first, this one last."""
        c = self.config
        this = {
            "run": str(self.out_dir),
            "init_from": c.init_from,
            "difficulty": c.difficulty,
            "steps": self.step,
            "minutes": round(self.train_seconds / 60, 3),
            "cpu_minutes": round(self.cpu_seconds / 60, 3),
            "device": _device_name(self.device),
            "threads": torch.get_num_threads(),
            "world_size": self.world.size,
        }
        return [*self.parent_lineage, this]

    # ------------------------------------------------------------------ schedule
    def lr_at(self, step: int) -> float:
        """Learning rate of the update that turns ``step`` done steps into ``step + 1``."""
        c = self.config
        if step < c.lr_warmup_steps:
            return c.lr * (step + 1) / c.lr_warmup_steps
        if c.lr_schedule == "constant":
            return c.lr
        span = max(1, c.steps - c.lr_warmup_steps)
        progress = min(1.0, (step + 1 - c.lr_warmup_steps) / span)
        return c.lr * (
            c.lr_min_ratio + (1 - c.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        )

    def _draw_min_segments(self, n: int) -> np.ndarray:
        """Per-puzzle minimum segments: 1, or with the exploration probability U[2, max]."""
        max_segments = self.model.config.max_segments
        explore = self.rng.random(n) < self.config.halt_exploration_prob
        drawn = self.rng.integers(2, max_segments + 1, size=n) if max_segments >= 2 else 1
        return np.where(explore, drawn, 1).astype(np.int64)

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, float]:
        """One segment of deep supervision for the whole batch, one optimizer update, then
        ACT halting and replacement of the halted puzzles.

        Returns:
            Metrics of this step, summed over ranks: ``loss, lm_loss, q_halt_loss,
            q_continue_loss`` (batch means), and over the puzzles that halted now: ``halted``
            (count), ``accuracy`` (cell), ``exact_accuracy``, ``q_halt_accuracy``, ``segments``.
        """
        c = self.config
        max_segments = self.model.config.max_segments
        rows = self.rows
        tokens = torch.from_numpy(self.batch.inputs[rows].astype(np.int64)).to(self.device)
        labels = torch.from_numpy(self.batch.targets[rows].astype(np.int64)).to(self.device)
        is_last = torch.from_numpy(self.batch.segments[rows] + 1 >= max_segments).to(self.device)

        # Deep supervision: one segment from the (detached) carry, loss on its answer.
        carry, out = self.model(self.carry, tokens)
        if c.targets == "closest":
            chosen = self.task.closest_targets(
                self.batch.inputs[rows],
                self.batch.targets[rows],
                out.logits.detach().float().cpu().numpy(),
            )
            labels = torch.from_numpy(chosen.astype(np.int64)).to(self.device)
        delayed_loss = None
        if c.q_bootstrap == "next-segment":
            # Q-learning target of q_continue: the best Q value one segment later, from the
            # new carry, without gradient (reference code; no target network).
            with torch.no_grad():
                _, following = self.model(carry, tokens)
                target = q_targets(following.q_halt, following.q_continue, is_last)
        else:
            target = None
            delayed_loss = self._delayed_q_continue_loss(out)
        # Every cell the model chooses is supervised, givens included: an answer is right only
        # if every cell is, so a cell left out of the loss would be wrong at random. Only with
        # an output mask do some cells copy their input by construction and carry no loss.
        parts = hrm_loss(
            out,
            labels,
            target,
            mask=self.model.answer_cells(tokens),
            loss=self.model.config.loss,
            reduction="none",
            lm_weight=None
            if c.segment_weighting == "uniform"
            else segment_weights(
                torch.from_numpy(self.batch.segments[rows] + 1).to(self.device),
                max_segments,
                c.segment_weighting,
            ),
        )
        # Each rank's rows contribute their share of the *global* batch mean; summing the
        # gradients over ranks then gives exactly the 1-process gradient.
        total = parts.total if delayed_loss is None else parts.total + 0.5 * delayed_loss
        if out.aux_logits is not None:
            aux = self.task.aux_labels(self.batch.inputs[rows], self.model.config.aux_target)
            aux_labels = torch.from_numpy(aux).to(self.device)
            total = total + c.aux_weight * aux_loss(out.aux_logits, aux_labels)
        loss = total.sum() / c.batch_size
        if not bool(torch.isfinite(loss)):
            raise TrainingDiverged(
                f"training diverged at step {self.step + 1}: the loss is {float(loss.detach())}; the "
                f"files in {self.out_dir} still hold the last save before it (try a lower --lr "
                "or --grad-clip)"
            )
        loss.backward()
        self._all_reduce_gradients()
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self._update_ema()
        self.step += 1

        # ACT halting, decided from this segment's Q values (before the update, as the
        # reference code does) on every rank for the whole batch.
        wants_halt = self._gather_rows((out.q_halt > out.q_continue).detach())
        self.batch.segments += 1
        segs = self.batch.segments
        halted = (segs >= max_segments) | (wants_halt & (segs >= self.batch.min_segments))

        with torch.no_grad():
            local_halted = torch.from_numpy(halted[rows]).to(self.device)
            preds = out.logits.argmax(-1)
            cell_mask = torch.from_numpy(self.task.cell_mask(self.batch.inputs[rows])).to(
                self.device
            )
            cell_acc = ((preds == labels) & cell_mask).sum(-1) / cell_mask.sum(-1).clamp_min(1)
            h = local_halted.float()
            sums = torch.stack(
                [
                    parts.total.detach().sum(),
                    parts.lm.detach().sum(),
                    parts.q_halt.detach().sum(),
                    (parts.q_continue if delayed_loss is None else delayed_loss).detach().sum(),
                    h.sum(),
                    (cell_acc * h).sum(),
                    (parts.seq_correct.float() * h).sum(),
                    (parts.q_halt_accuracy.float() * h).sum(),
                    (torch.from_numpy(segs[rows]).to(self.device).float() * h).sum(),
                ]
            ).double()
        if self.world.size > 1:
            dist.all_reduce(sums)
        sums = sums.cpu().tolist()

        self.carry = carry
        if c.q_bootstrap == "delayed":
            # What the next step needs to fit this segment's q_continue: the state the Q head
            # read, and whether the puzzle will still be there.
            self.q_prefix = carry.z_H[:, 0].detach().clone()
            self.q_prefix_valid = torch.from_numpy(~halted[rows]).to(self.device)
        self._replace(halted)
        B = c.batch_size
        return {
            "loss": sums[0] / B,
            "lm_loss": sums[1] / B,
            "q_halt_loss": sums[2] / B,
            "q_continue_loss": sums[3] / B,
            "halted": sums[4],
            "accuracy": sums[5],
            "exact_accuracy": sums[6],
            "q_halt_accuracy": sums[7],
            "segments": sums[8],
            "lr": lr,
        }

    def _delayed_q_continue_loss(self, out: Any) -> torch.Tensor:
        """(b,) BCE of last step's q_continue, re-read by the current Q head from the stored
        prefix state, against this step's Q values (``q_bootstrap="delayed"``).

        The target is the one ``next-segment`` gives the same segment: the best of this step's
        two Q values. (A segment at the limit halts, so its row is no longer valid here.)"""
        if self.q_prefix is None:
            return torch.zeros_like(out.q_halt)
        target = q_targets(out.q_halt.detach(), out.q_continue.detach(), False)
        with self.model.autocast():
            q_continue = self.model.q_head(self.q_prefix)[:, 1].float()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            q_continue, target, reduction="none"
        )
        return torch.where(self.q_prefix_valid, bce, 0.0)

    def _replace(self, halted: np.ndarray) -> None:
        """Put fresh puzzles into the halted rows (same draws on every rank)."""
        n = int(halted.sum())
        if n == 0:
            return
        inputs, targets = self.source.draw(self.rng, n)
        self.batch.inputs[halted] = inputs
        self.batch.targets[halted] = targets
        self.batch.segments[halted] = 0
        self.batch.min_segments[halted] = self._draw_min_segments(n)
        mask = torch.from_numpy(halted[self.rows]).to(self.device)
        self.carry = self.model.reset_carry(self.carry, mask)

    def _gather_rows(self, local: torch.Tensor) -> np.ndarray:
        """(b,) bool per rank -> (B,) bool numpy on every rank."""
        if self.world.size == 1:
            return local.cpu().numpy()
        parts = [torch.empty_like(local, dtype=torch.uint8) for _ in range(self.world.size)]
        dist.all_gather(parts, local.to(torch.uint8))
        return torch.cat(parts).cpu().numpy().astype(bool)

    def _all_reduce_gradients(self) -> None:
        if self.world.size == 1:
            return
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def _update_ema(self) -> None:
        if self.ema_state is None:
            return
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                self.ema_state[name].lerp_(p.detach(), 1.0 - self.config.ema)

    # ------------------------------------------------------------------ eval and saving
    def eval_model(self) -> HRM:
        """The model to evaluate and ship: a copy with the EMA weights, or the model itself."""
        if self.ema_state is None:
            return self.model
        # A fresh module (not a deepcopy, which compiled modules do not survive), seeded so
        # that building it leaves the global torch RNG alone.
        shadow = HRM(self.model.config, generator=torch.Generator().manual_seed(0))
        shadow.load_state_dict(self.model.state_dict())
        shadow.to(self.device)
        with torch.no_grad():
            for name, p in shadow.named_parameters():
                p.copy_(self.ema_state[name])
        return shadow

    def eval_sets(self) -> dict[str, PuzzleBatch]:
        """The held-out puzzles, by tier (``"test"``: the first ``eval_size`` of the bundled
        test set). Each tier is drawn once from its own fixed stream, apart from the training
        data, so every evaluation of every run (and of its resumption) sees the same puzzles."""
        if self._eval_sets is None:
            size = self.config.eval_size
            tiers = self.config.eval_tiers
            if not tiers:
                test = self.task.test_set()
                self._eval_sets = {"test": test if size is None else test[:size]}
            else:
                # One stream per tier, seeded by the tier's name alone: the same puzzles for
                # every run, seed and resumption, whatever other tiers are listed.
                self._eval_sets = {
                    t: self.task.sample(
                        np.random.default_rng([EVAL_SEED, zlib.crc32(t.encode())]), size or 512, t
                    )
                    for t in tiers
                }
        return self._eval_sets

    def evaluate(self) -> dict[str, EvalResult]:
        """Evaluate (the EMA weights when on) on each held-out set; see :meth:`eval_sets`."""
        model = self.eval_model()  # with EMA a fresh copy: build it once for every tier
        results = {
            tier: evaluate(model, self.task, batch, batch_size=256)
            for tier, batch in self.eval_sets().items()
        }
        self.tier_evals = {tier: r.to_json("max") for tier, r in results.items()}
        self.last_eval = next(iter(self.tier_evals.values()))
        return results

    def _gather(self, local: torch.Tensor) -> torch.Tensor:
        """Per-rank rows (b, ...) -> the global batch's rows (B, ...) on the CPU."""
        if self.world.size == 1:
            return local.detach().cpu()
        parts = [torch.empty_like(local) for _ in range(self.world.size)]
        dist.all_gather(parts, local.detach().contiguous())
        return torch.cat(parts).cpu()

    def _gather_carry(self) -> Carry:
        return Carry(self._gather(self.carry.z_H), self._gather(self.carry.z_L))

    def save(self) -> None:
        """Write the checkpoint and the trainer state (collective: call on every rank)."""
        carry = self._gather_carry()
        q_prefix = None
        if self.q_prefix is not None:
            q_prefix = {
                "state": self._gather(self.q_prefix),
                "valid": self._gather(self.q_prefix_valid),
            }
        if not self.world.is_main:
            return
        state = {
            "format": TRAINER_STATE_FORMAT,
            "version": TRAINER_STATE_VERSION,
            "config": self.config.to_dict(),
            "step": self.step,
            "train_seconds": self.train_seconds,
            "cpu_seconds": self.cpu_seconds,
            "parent_lineage": json.dumps(self.parent_lineage),
            "model_config": json.dumps(self.model.config.to_dict()),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "ema": None
            if self.ema_state is None
            else {k: v.cpu() for k, v in self.ema_state.items()},
            "optimizer": _to_cpu(self.optimizer.state_dict()),
            "carry": {"z_H": carry.z_H, "z_L": carry.z_L},
            "q_prefix": q_prefix,
            "batch": {
                "inputs": torch.from_numpy(self.batch.inputs.copy()),
                "targets": torch.from_numpy(self.batch.targets.copy()),
                "segments": torch.from_numpy(self.batch.segments.copy()),
                "min_segments": torch.from_numpy(self.batch.min_segments.copy()),
            },
            "pool": None
            if self.source.pool is None
            else {
                "inputs": torch.from_numpy(np.ascontiguousarray(self.source.pool.inputs)),
                "targets": torch.from_numpy(np.ascontiguousarray(self.source.pool.targets)),
                "ratings": torch.from_numpy(np.ascontiguousarray(self.source.pool.ratings)),
            },
            "rng": {
                "numpy": self.rng.bit_generator.state,
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "last_eval": self.last_eval,
            "tier_evals": json.dumps(self.tier_evals),
        }
        lineage = self.lineage()
        meta = {
            "task": self.task.name,
            "preset": self.config.preset,
            "train_config": self.config.to_dict(),
            "steps": self.step,
            "samples_seen": self.step * self.config.batch_size,
            "minutes": round(self.train_seconds / 60, 3),
            "device": _device_name(self.device),
            "world_size": self.world.size,
            "weights": "ema" if self.ema_state is not None else "raw",
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "eval": self.last_eval,
            "eval_tiers": self.tier_evals,
            "lineage": lineage,
            **lineage_totals(lineage),
        }
        # The trainer state first: a checkpoint on disk always has a state at least as new.
        save_trainer_state(self.state_path, state)
        save_checkpoint(self.stem, self.eval_model(), meta=meta)

    def _read_state(self) -> dict[str, Any]:
        """The trainer state in ``out_dir``, checked to be one this hrm can resume."""
        if not self.state_path.is_file():
            raise FileNotFoundError(f"nothing to resume: no trainer state at {self.state_path}")
        state = load_trainer_state(self.state_path)
        if state.get("format") != TRAINER_STATE_FORMAT:
            raise ValueError(f"{self.state_path} is not an hrm trainer state")
        if state.get("version") != TRAINER_STATE_VERSION:
            raise ValueError(
                f"{self.state_path} has trainer-state version {state.get('version')!r}; "
                f"this hrm reads version {TRAINER_STATE_VERSION}"
            )
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        """Continue from a state read by :meth:`_read_state`."""
        saved = TrainConfig.from_dict(state["config"]).to_dict()
        now = self.config.to_dict()
        changed = sorted(k for k in now if now[k] != saved[k] and k not in RESUMABLE_CHANGES)
        if changed:
            details = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed)
            raise ValueError(
                f"cannot resume {self.out_dir} with a different run config ({details})"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, KeyError, ValueError) as err:
            raise ValueError(
                f"trainer state {self.state_path} does not fit the model: {err}"
            ) from err
        if self.ema_state is not None:
            self.ema_state = {k: v.to(self.device) for k, v in state["ema"].items()}
        self.step = int(state["step"])
        self.train_seconds = float(state["train_seconds"])
        self.cpu_seconds = float(state.get("cpu_seconds", self.train_seconds))
        self.parent_lineage = json.loads(state.get("parent_lineage") or "[]")
        self.last_eval = state.get("last_eval")
        self.tier_evals = json.loads(state.get("tier_evals") or "{}")
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]["numpy"]
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        pool = None
        if state["pool"] is not None:
            p = state["pool"]
            pool = PuzzleBatch(p["inputs"].numpy(), p["targets"].numpy(), p["ratings"].numpy())
        self.source = _PuzzleSource(self.task, self.config.difficulty, pool)
        b = state["batch"]
        self.batch = _Batch(
            inputs=b["inputs"].numpy().copy(),
            targets=b["targets"].numpy().copy(),
            segments=b["segments"].numpy().copy(),
            min_segments=b["min_segments"].numpy().copy(),
        )
        self.carry = Carry(
            state["carry"]["z_H"][self.rows].to(self.device),
            state["carry"]["z_L"][self.rows].to(self.device),
        )
        if state.get("q_prefix") is not None:
            self.q_prefix = state["q_prefix"]["state"][self.rows].to(self.device)
            self.q_prefix_valid = state["q_prefix"]["valid"][self.rows].to(self.device)

    # ------------------------------------------------------------------ the loop
    def fit(self, stop_at: int | None = None) -> TrainResult:
        """Train until ``config.steps`` (or ``stop_at``, to be resumed later), evaluating,
        logging and checkpointing as configured; always ends with an evaluation and a save.

        Args:
            stop_at: stop after this many total steps (the schedule still spans ``steps``).
        """
        c = self.config
        end = c.steps if stop_at is None else min(stop_at, c.steps)
        logger = _Logger(self, enabled=self.world.is_main) if self._logger is None else self._logger
        self._logger = logger
        stop = _StopSignals()
        try:
            window = _Window()
            tick, cpu_tick = time.perf_counter(), time.process_time()
            while self.step < end:
                metrics = self.train_step()
                now = time.perf_counter()
                self.train_seconds += now - tick
                self.cpu_seconds += time.process_time() - cpu_tick
                window.add(metrics, now - tick)
                tick = now
                if self.step % c.log_every == 0 or self.step == end:
                    logger.train_row(self.step, window.summary(c.batch_size))
                    window = _Window()
                logger.progress(self.step, metrics)
                eval_due = c.eval_every and self.step % c.eval_every == 0 and self.step < end
                if eval_due and self.world.is_main:
                    logger.eval_rows(self.step, self.evaluate(), self)
                signum = self._agreed_stop(stop)
                if signum is not None:
                    # Interrupted: the step in flight is done; keep everything up to it.
                    self.save()
                    raise TrainingInterrupted(signum, self.step, self.out_dir)
                if c.checkpoint_every and self.step % c.checkpoint_every == 0 and self.step < end:
                    self.save()
                tick, cpu_tick = time.perf_counter(), time.process_time()
            if self.world.is_main:
                logger.eval_rows(self.step, self.evaluate(), self)
            self.save()
            self._fit_finished = True
        finally:
            stop.restore()
            logger.close()
            self._logger = None
        return TrainResult(self.step, self.stem, self.last_eval, self.train_seconds / 60)

    def _agreed_stop(self, stop: _StopSignals) -> int | None:
        """The signal to stop on, agreed by every rank (the highest number any rank got), so
        that all ranks enter the collective save together; None: keep training."""
        if self.world.size == 1:
            return stop.received
        flag = torch.tensor([stop.received or 0], dtype=torch.int64, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item()) or None

    def close(self) -> None:
        """Leave the process group if this trainer joined it."""
        if self._owns_group and dist.is_initialized():
            # Rank 0 evaluates and writes the checkpoint after the last collective while the
            # other ranks have nothing left to do. Tearing gloo down on one rank while a peer
            # is still connected can abort the process ("terminate called without an active
            # exception", seen once in CI), so every rank waits here for the others first.
            # After a failure the peers may never arrive, so then we leave without waiting.
            try:
                if self._fit_finished:
                    dist.barrier()
            finally:
                dist.destroy_process_group()
            self._owns_group = False


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; nothing of the failed step was saved."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped :meth:`Trainer.fit` after a step; the state was saved."""

    def __init__(self, signum: int, step: int, out_dir: Path) -> None:
        self.signum = signum
        self.step = step
        self.out_dir = out_dir
        name = signal.Signals(signum).name
        super().__init__(
            f"interrupted by {name} after step {step}; state saved in {out_dir}, "
            f"`--resume` continues from step {step}"
        )

    @property
    def exit_code(self) -> int:
        """The shell convention, 128 + signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


class _StopSignals:
    """While alive, SIGINT and SIGTERM only ask the loop to stop after the current step.

    A second signal of either kind stops at once (KeyboardInterrupt), for a user who does not
    want to wait. Installed only in the main thread (Python allows no handlers elsewhere).
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        print(
            f"hrm train: {signal.Signals(signum).name} received; saving after the step in "
            "flight (signal again to stop at once, losing it)",
            file=sys.stderr,
            flush=True,
        )

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


def train(
    config: TrainConfig,
    resume: bool = False,
    stop_at: int | None = None,
    task: Task | None = None,
) -> TrainResult:
    """Run (or resume) a training run to the end; see :class:`Trainer`."""
    trainer = Trainer(config, resume=resume, task=task)
    try:
        return trainer.fit(stop_at=stop_at)
    finally:
        trainer.close()


# ---------------------------------------------------------------------- logging
class _Window:
    """Metrics accumulated since the last log row."""

    def __init__(self) -> None:
        self.steps = 0
        self.seconds = 0.0
        self.sums: dict[str, float] = {}
        self.lr = 0.0

    def add(self, metrics: dict[str, float], seconds: float) -> None:
        self.steps += 1
        self.seconds += seconds
        self.lr = metrics["lr"]
        for k, v in metrics.items():
            if k != "lr":
                self.sums[k] = self.sums.get(k, 0.0) + v

    def summary(self, batch_size: int) -> dict[str, float]:
        s, n = self.sums, max(self.steps, 1)
        halted = s.get("halted", 0.0)
        per_halted = (lambda k: s[k] / halted) if halted else (lambda k: float("nan"))
        return {
            "loss": s["loss"] / n,
            "lm_loss": s["lm_loss"] / n,
            "q_halt_loss": s["q_halt_loss"] / n,
            "q_continue_loss": s["q_continue_loss"] / n,
            "accuracy": per_halted("accuracy"),
            "exact_accuracy": per_halted("exact_accuracy"),
            "q_halt_accuracy": per_halted("q_halt_accuracy"),
            "mean_segments": per_halted("segments"),
            "lr": self.lr,
            "samples_per_s": batch_size * self.steps / max(self.seconds, 1e-9),
        }


TRAIN_COLUMNS = (
    "step",
    "loss",
    "lm_loss",
    "q_halt_loss",
    "q_continue_loss",
    "accuracy",
    "exact_accuracy",
    "q_halt_accuracy",
    "mean_segments",
    "lr",
    "samples_per_s",
)
EVAL_COLUMNS = (
    "step",
    "tier",
    "minutes",
    "cpu_minutes",
    "exact_accuracy",
    "cell_accuracy",
    "q_exact_accuracy",
    "q_cell_accuracy",
    "q_mean_cycles",
    "max_cycles",
    "n",
    "path_precision",
    "path_recall",
)


class _Logger:
    """CSV + TensorBoard + tqdm, on rank 0 only. ``samples_per_s`` counts puzzle-segments."""

    def __init__(self, trainer: Trainer, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None
        self.writer = None
        if not enabled:
            return
        out = trainer.out_dir
        out.mkdir(parents=True, exist_ok=True)
        start = trainer.step
        self.train_csv = _CsvLog(out / "train.csv", TRAIN_COLUMNS, start)
        self.eval_csv = _CsvLog(out / "eval.csv", EVAL_COLUMNS, start)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out / "tb"), purge_step=start or None)
        except ImportError:  # tensorboard is a declared dependency; keep training without it
            self.writer = None
        if trainer.config.progress and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=trainer.config.steps,
                initial=start,
                desc=f"train {trainer.task.name}",
                unit="step",
                dynamic_ncols=True,
            )

    def train_row(self, step: int, row: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.train_csv.write({"step": step, **row})
        if self.writer is not None:
            for k, v in row.items():
                if math.isfinite(v):
                    self.writer.add_scalar(f"train/{k}", v, step)

    def eval_rows(self, step: int, results: dict[str, EvalResult], trainer: Trainer) -> None:
        for tier, result in results.items():
            self.eval_row(step, result, tier, trainer)

    def eval_row(self, step: int, result: EvalResult, tier: str, trainer: Trainer) -> None:
        if not self.enabled:
            return
        row = {
            "step": step,
            "tier": tier,
            "minutes": trainer.train_seconds / 60,
            "cpu_minutes": trainer.cpu_seconds / 60,
            "exact_accuracy": result.exact_accuracy,
            "cell_accuracy": result.cell_accuracy,
            "q_exact_accuracy": result.q_exact_accuracy,
            "q_cell_accuracy": result.q_cell_accuracy,
            "q_mean_cycles": result.q_mean_cycles,
            "max_cycles": result.max_cycles,
            "n": result.n,
            **({} if result.path is None else result.path),
        }
        self.eval_csv.write(row)
        if self.writer is not None:
            prefix = "eval" if tier == "test" else f"eval_{tier}"
            for k in ("exact_accuracy", "cell_accuracy", "q_exact_accuracy", "q_mean_cycles"):
                self.writer.add_scalar(f"{prefix}/{k}", row[k], step)
        if self.bar is not None:
            self.bar.write(
                f"step {step} ({tier}): eval exact {result.exact_accuracy:.3f} cells "
                f"{result.cell_accuracy:.3f} | Q-halt exact {result.q_exact_accuracy:.3f} "
                f"in {result.q_mean_cycles:.1f} cycles"
            )

    def progress(self, step: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{metrics['loss']:.3f}", lr=f"{metrics['lr']:.2e}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


class _CsvLog:
    """Append-only CSV; on resume rows after the resumed step (from a lost run) are dropped."""

    def __init__(self, path: Path, columns: tuple[str, ...], start_step: int) -> None:
        self.path = path
        self.columns = columns
        kept: list[dict[str, str]] = []
        if start_step and path.is_file():
            with open(path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(kept)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow(
                {k: _fmt(row.get(k)) for k in self.columns}
            )


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


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


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hrm train``."""
    d = TrainConfig()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Without --preset, each task trains with its measured recipe (explicit flags override "
        "any part of it):\n" + describe_recipes() + "\nWith --preset, the preset and the "
        f"generic defaults apply (lr {d.lr}, {d.lr_schedule} schedule, batch {d.batch_size}, "
        f"{d.steps} steps)."
    )
    parser.add_argument("task", help=f"task to learn: {', '.join(TASK_NAMES)}")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--preset",
        default=None,
        help=f"HRM preset: {', '.join(PRESETS)} (default: the task's recipe, see below)",
    )
    for name, kind in (
        ("hidden_size", int),
        ("num_heads", int),
        ("h_layers", int),
        ("l_layers", int),
        ("h_cycles", int),
        ("l_cycles", int),
        ("max_segments", int),
        ("expansion", float),
        ("multiple_of", int),
    ):
        model.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            default=None,
            help=f"override the preset's {name}",
        )
    model.add_argument(
        "--gradient",
        choices=("one-step", "last-cycle"),
        default=None,
        help="gradient mode (default: the preset's, one-step)",
    )
    model.add_argument(
        "--mixer",
        choices=MIXERS,
        default=None,
        help="token mixer: attention (the paper's), mlp (TRM's), candidates (Sudoku "
        "candidate grid, digit-shared weights), conv (grid tasks)",
    )
    model.add_argument(
        "--conv-kernel", type=int, default=None, help="conv mixer: kernel side (odd, default 3)"
    )
    model.add_argument(
        "--conv-dilations",
        default=None,
        help="conv mixer: comma-separated dilations cycled over each level's blocks, e.g. 1,2,4",
    )
    model.add_argument(
        "--conv-mix",
        choices=CONV_MIXES,
        default=None,
        help="conv mixer: depthwise (each channel with its own neighbours, then the block's "
        "SwiGLU mixes channels) or full (every channel of the neighbourhood, as DeepThinking)",
    )
    model.add_argument(
        "--zero-init-residual",
        action="store_true",
        default=None,
        help="start every block's residual branches at zero, so a deep recurrence starts as "
        "the identity",
    )
    model.add_argument(
        "--compute-dtype",
        choices=COMPUTE_DTYPES,
        default=None,
        help="precision of the blocks on CUDA: bfloat16 autocast (default) or float32 (also "
        "turns TF32 off, so a CUDA run does the arithmetic a CPU run does); CPU is always float32",
    )
    model.add_argument(
        "--output-mask",
        action="store_true",
        default=None,
        help="answer only what can change: each cell chooses among the tokens its input "
        "allows (a maze's open cell: path or not; walls, S and G copied), and the loss is "
        "averaged over the cells that choose",
    )
    model.add_argument(
        "--aux-target",
        default=None,
        help="also predict an auxiliary per-cell target during training (maze: distance3 = "
        "moves to G mod 3, on-path = on some shortest path); a small extra head",
    )
    model.add_argument(
        "--loss",
        choices=("stablemax", "softmax"),
        default=None,
        help="cell loss (default: stablemax)",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--difficulty",
        default=None,
        help="tier of the training puzzles, or a weighted mix such as easy:0.5,medium:0.5",
    )
    data.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="fixed set of N puzzles augmented on the fly (default: stream fresh)",
    )
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--steps", type=int, default=None, help="training steps (segments)")
    opt.add_argument("--batch-size", type=int, default=None, help="global batch size")
    opt.add_argument("--lr", type=float, default=None, help="peak learning rate")
    opt.add_argument("--warmup", type=int, default=None, help="warmup steps")
    opt.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=None,
        help="after warmup: constant or cosine",
    )
    opt.add_argument("--lr-min-ratio", type=float, default=None, help="cosine: final lr / peak lr")
    opt.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW decay")
    opt.add_argument("--beta1", type=float, default=d.betas[0], help="AdamW beta1")
    opt.add_argument("--beta2", type=float, default=d.betas[1], help="AdamW beta2")
    opt.add_argument("--grad-clip", type=float, default=d.grad_clip, help="0 = off")
    opt.add_argument(
        "--q-bootstrap",
        choices=Q_BOOTSTRAPS,
        default=None,
        help="q_continue target: next-segment (the paper's extra no-grad segment) or delayed "
        "(read from the puzzle's next training step; a third cheaper)",
    )
    opt.add_argument(
        "--targets",
        choices=TARGET_RULES,
        default=None,
        help="puzzles with several correct answers (mazes with tied shortest paths): supervise "
        "the data's own (fixed) or, each step, the one nearest the model's answer (closest)",
    )
    opt.add_argument(
        "--aux-weight", type=float, default=None, help="weight of the --aux-target loss"
    )
    opt.add_argument(
        "--segment-weighting",
        choices=SEGMENT_WEIGHTINGS,
        default=None,
        help="weight of each segment's cell loss: uniform (the paper's) or linear (segment s "
        "of M weighs 2s/(M+1): early guesses cost less)",
    )
    opt.add_argument(
        "--halt-exploration",
        type=float,
        default=d.halt_exploration_prob,
        help="ACT exploration probability",
    )
    opt.add_argument("--ema", type=float, default=d.ema, help="EMA decay of the weights (0 = off)")
    run_group = parser.add_argument_group("run")
    run_group.add_argument(
        "--out-dir",
        default=None,
        help="output folder (default: runs/TASK-recipe, or runs/TASK-PRESET with --preset)",
    )
    run_group.add_argument("--seed", type=int, default=d.seed, help="seed of the whole run")
    run_group.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1, ...")
    run_group.add_argument("--compile", action="store_true", help="torch.compile the model")
    run_group.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default: torch's choice; 1 is often fastest for small "
        "models on a busy machine)",
    )
    run_group.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="evaluate every N steps (0: at the end only)",
    )
    run_group.add_argument(
        "--eval-size", type=int, default=None, help="test puzzles per evaluation (per tier)"
    )
    run_group.add_argument(
        "--eval-difficulty",
        default=None,
        help="evaluate on fresh held-out puzzles of these comma-separated tiers instead of the "
        "bundled test set (one eval.csv row per tier)",
    )
    run_group.add_argument(
        "--init-from",
        default=None,
        metavar="CHECKPOINT",
        help="start from this checkpoint's weights and config (fresh optimizer and schedule; "
        "--preset and the recipe's model are not used, explicit model flags are), e.g. "
        "hrm_agent/checkpoints/sudoku; its lineage is carried on",
    )
    run_group.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="save every N steps (0: at the end only)",
    )
    run_group.add_argument("--log-every", type=int, default=d.log_every, help="log every N steps")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar")
    run_group.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out-dir from its last checkpoint",
    )
    run_group.add_argument(
        "--stop-at",
        type=int,
        default=None,
        help="stop (and save) after this many steps; resume later",
    )
    run_group.add_argument("--json", action="store_true", help="print the result as JSON")


# ``hrm train`` flags whose default comes from the task's recipe (flag dest -> TrainConfig
# field); they parse to None when not given.
RECIPE_FLAGS = {
    "difficulty": "difficulty",
    "batch_size": "batch_size",
    "lr": "lr",
    "warmup": "lr_warmup_steps",
    "lr_schedule": "lr_schedule",
    "lr_min_ratio": "lr_min_ratio",
    "steps": "steps",
    "q_bootstrap": "q_bootstrap",
    "targets": "targets",
    "segment_weighting": "segment_weighting",
    "aux_weight": "aux_weight",
    "eval_every": "eval_every",
    "eval_size": "eval_size",
    "eval_difficulty": "eval_difficulty",
    "checkpoint_every": "checkpoint_every",
}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Build the :class:`TrainConfig` of parsed ``hrm train`` arguments.

    Without ``--preset`` the task's recipe (:mod:`hrm_agent.recipes`) fills every flag not
    given; with ``--preset`` the preset and TrainConfig's generic defaults do. With
    ``--init-from`` the model comes from the checkpoint, so the recipe's model fields are not
    applied (only explicit model flags are).
    """
    fields: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    preset = args.preset
    if preset is None:
        recipe = recipe_for(args.task)
        preset = recipe.preset
        fields.update(recipe.train)
        if args.init_from is None:
            overrides.update(recipe.overrides)
    overrides.update(
        {
            name: getattr(args, name)
            for name in MODEL_OVERRIDE_FIELDS
            if getattr(args, name, None) is not None
        }
    )
    if getattr(args, "output_mask", None):
        choices = get_task(args.task).output_choices
        if choices is None:
            raise ValueError(f"--output-mask: task {args.task!r} has no output mask")
        overrides["output_choices"] = choices
    if getattr(args, "aux_target", None):
        targets = get_task(args.task).aux_targets
        if args.aux_target not in targets:
            known = ", ".join(targets) or "none"
            raise ValueError(
                f"--aux-target: task {args.task!r} has no target {args.aux_target!r}; it has: {known}"
            )
        overrides["aux_target"] = args.aux_target
        overrides["aux_classes"] = targets[args.aux_target]
    fields.update(
        {
            name: getattr(args, dest)
            for dest, name in RECIPE_FLAGS.items()
            if getattr(args, dest, None) is not None
        }
    )
    return TrainConfig(
        task=args.task,
        preset=preset,
        overrides=overrides,
        train_size=args.train_size,
        weight_decay=args.weight_decay,
        betas=(args.beta1, args.beta2),
        grad_clip=args.grad_clip,
        halt_exploration_prob=args.halt_exploration,
        ema=args.ema,
        init_from=args.init_from,
        out_dir=args.out_dir or f"runs/{args.task}-{args.preset or 'recipe'}",
        seed=args.seed,
        device=args.device,
        compile=args.compile,
        log_every=args.log_every,
        progress=not args.no_progress,
        **fields,
    )


def run(args: argparse.Namespace) -> int:
    """``hrm train``: train (or resume) and report where the checkpoint is."""
    if args.task not in TASK_NAMES:
        raise ValueError(f"unknown task {args.task!r}; known tasks: {', '.join(TASK_NAMES)}")
    config = config_from_args(args)
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    trainer = Trainer(config, resume=args.resume)
    try:
        result = trainer.fit(stop_at=args.stop_at)
        is_main = trainer.world.is_main
    except TrainingInterrupted as stop:
        if trainer.world.is_main:
            print(f"hrm train: {stop}", file=sys.stderr)
        return stop.exit_code
    finally:
        trainer.close()
    if not is_main:
        return 0
    tiers = trainer.tier_evals or {"test": result.eval or {}}
    summary = {
        "task": config.task,
        "steps": result.step,
        "minutes": round(result.minutes, 3),
        "checkpoint": str(result.checkpoint),
        "eval": result.eval,
        "eval_tiers": trainer.tier_evals,
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"trained {config.task} for {result.step} steps in {result.minutes:.1f} min")
    for tier, ev in tiers.items():
        q = ev.get("q_halting", {})
        print(
            f"  {tier}: exact {ev.get('exact_accuracy', float('nan')):.3f} "
            f"(cells {ev.get('cell_accuracy', float('nan')):.3f}) after "
            f"{ev.get('max_cycles', '?')} cycles, Q-halt exact "
            f"{q.get('exact_accuracy', float('nan')):.3f} in "
            f"{q.get('mean_cycles', float('nan')):.1f} cycles"
        )
    print(f"checkpoint: {result.checkpoint}.safetensors / .json")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m hrm_agent.train ...`` (same as ``hrm train ...``; for torchrun)."""
    parser = argparse.ArgumentParser(prog="hrm train", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
