"""The ``hrm train`` command: its flags, how they become a :class:`TrainConfig`, and running it.

Owns the command line of training: the flags and their help, which flags take their default
from the task's recipe (:data:`RECIPE_FLAGS`), turning parsed arguments into a config, and the
report printed at the end. Must not hold training logic or defaults of its own beyond the
recipe's and :class:`TrainConfig`'s.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

import torch

from hrm_agent.config import COMPUTE_DTYPES, CONV_MIXES, MIXERS, PRESETS
from hrm_agent.losses import SEGMENT_WEIGHTINGS
from hrm_agent.recipes import describe_recipes, recipe_for
from hrm_agent.training.options import (
    LR_SCHEDULES,
    MODEL_OVERRIDE_FIELDS,
    Q_BOOTSTRAPS,
    TARGET_RULES,
    TRAIN_HALTINGS,
    TrainConfig,
)
from hrm_agent.training.stops import TrainingInterrupted
from hrm_agent.training.trainer import Trainer
from hrm_env.puzzles.tasks import TASK_NAMES, get_task

__all__ = [
    "RECIPE_FLAGS",
    "add_arguments",
    "config_from_args",
    "field_flags",
    "main",
    "name_flags",
    "run",
]


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
        "--max-aggregation",
        dest="max_aggregation_on",
        action="store_true",
        default=None,
        help="conv mixer: every block also adds a gated max over each cell's 4 neighbours, "
        "walls never read (a BFS wavefront is such a max); the task names its walls",
    )
    model.add_argument(
        "--closed-walls",
        dest="closed_walls_on",
        action="store_true",
        default=None,
        help="conv mixer: walls pass nothing on (their neighbours read 0 there), so "
        "information travels only through open cells; the task names its walls",
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
        "moves to G mod 3, on-path = on some shortest path, the maze recipe's, slack = how "
        "many moves longer than the shortest the best route through the cell is: 0, 2, 4, "
        ">= 6 or unreachable); a small extra head; none: no auxiliary target",
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
    opt.add_argument(
        "--weight-decay", type=float, default=None, help=f"AdamW decay (default {d.weight_decay})"
    )
    opt.add_argument("--beta1", type=float, default=d.betas[0], help="AdamW beta1")
    opt.add_argument("--beta2", type=float, default=d.betas[1], help="AdamW beta2")
    opt.add_argument(
        "--grad-clip", type=float, default=None, help=f"0 = off (default {d.grad_clip})"
    )
    opt.add_argument(
        "--q-bootstrap",
        choices=Q_BOOTSTRAPS,
        default=None,
        help="q_continue target: next-segment (the paper's extra no-grad segment) or delayed "
        "(read from the puzzle's next training step; a third cheaper)",
    )
    opt.add_argument(
        "--q-step-cost",
        type=float,
        default=None,
        metavar="COST",
        help="taken off the value of continuing in q_continue's target, as the halting env "
        "charges each continue (0 = the paper's targets, the default); keeps a solved puzzle's "
        "q_continue below its q_halt",
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
    opt.add_argument(
        "--train-halting",
        choices=TRAIN_HALTINGS,
        default=None,
        help="when a training puzzle leaves the batch: q (when its Q head says halt, the "
        "paper's ACT) or max (after max_segments; the Q head is still trained)",
    )
    opt.add_argument(
        "--carry-noise",
        type=float,
        default=d.carry_noise,
        metavar="SIGMA",
        help="std of Gaussian noise on the carry entering every segment after a puzzle's "
        "first, as --samples adds at inference (0 = off)",
    )
    opt.add_argument(
        "--ema",
        type=float,
        default=None,
        help="EMA decay of the weights, which are then evaluated and saved (0 = off; "
        "default: the recipe's, else off)",
    )
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
    "q_step_cost": "q_step_cost",
    "targets": "targets",
    "weight_decay": "weight_decay",
    "grad_clip": "grad_clip",
    "segment_weighting": "segment_weighting",
    "train_halting": "train_halting",
    "aux_weight": "aux_weight",
    "ema": "ema",
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
    overrides.update(_task_overrides(args))
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
        betas=(args.beta1, args.beta2),
        halt_exploration_prob=args.halt_exploration,
        carry_noise=args.carry_noise,
        init_from=args.init_from,
        out_dir=args.out_dir or f"runs/{args.task}-{args.preset or 'recipe'}",
        seed=args.seed,
        device=args.device,
        compile=args.compile,
        log_every=args.log_every,
        progress=not args.no_progress,
        **fields,
    )


def _task_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Model fields that flags ask for by name and the task fills in: the output mask
    (``--output-mask``), the walls of the max aggregation (``--max-aggregation``) and the
    auxiliary target's class count (``--aux-target``)."""
    task = get_task(args.task)
    overrides: dict[str, Any] = {}
    if getattr(args, "output_mask", None):
        if task.output_choices is None:
            raise ValueError(f"--output-mask: task {args.task!r} has no output mask")
        overrides["output_choices"] = task.output_choices
    if getattr(args, "max_aggregation_on", None):
        if not task.wall_tokens:
            raise ValueError(f"--max-aggregation: task {args.task!r} has no walls")
        overrides["max_aggregation"] = task.wall_tokens
    if getattr(args, "closed_walls_on", None):
        if not task.wall_tokens:
            raise ValueError(f"--closed-walls: task {args.task!r} has no walls")
        overrides["closed_walls"] = task.wall_tokens
    if getattr(args, "aux_target", None) == "none":
        overrides["aux_target"], overrides["aux_classes"] = None, 0
    elif getattr(args, "aux_target", None):
        if args.aux_target not in task.aux_targets:
            known = ", ".join([*task.aux_targets, "none"])
            raise ValueError(
                f"--aux-target: task {args.task!r} has no target {args.aux_target!r}; "
                f"choose from: {known}"
            )
        overrides["aux_classes"] = task.aux_targets[args.aux_target]
    return overrides


# TrainConfig and HRMConfig fields whose flag is not "--" + the field's name with dashes.
_RENAMED_FIELDS = {
    "halt_exploration_prob": "--halt-exploration",
    "halt_exploration": "--halt-exploration",
    "betas": "--beta1/--beta2",
    "progress": "--no-progress",
    **{field: "--" + dest.replace("_", "-") for dest, field in RECIPE_FLAGS.items()},
}


def field_flags() -> dict[str, str]:
    """TrainConfig / HRMConfig field -> the ``hrm train`` flag that sets it."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    # Every flag's dest is its name with underscores: --hidden-size -> hidden_size.
    dests = vars(parser.parse_args(["sudoku"]))
    flags = {dest: "--" + dest.replace("_", "-") for dest in dests if dest != "task"}
    return {**flags, **_RENAMED_FIELDS}


def name_flags(message: str) -> str:
    """A library error message with the fields it names spelled as ``hrm train`` flags.

    ``HRMConfig.hidden_size`` and names with an underscore (``lr_warmup_steps``) are replaced
    wherever they appear; a plain word (``lr``, ``seed``) only as the message's subject or
    before ``=``, where it cannot be prose.
    """
    flags = field_flags()

    def flag_of(match: re.Match[str]) -> str:
        name = match.group("name")
        plain = "_" not in name and not match.group("cls")
        subject = match.start() == 0 or message[match.end() : match.end() + 1] == "="
        if name not in flags or (plain and not subject):
            return match.group(0)
        return flags[name]

    return re.sub(r"(?P<cls>HRMConfig\.)?\b(?P<name>[a-z][a-z0-9_]*)\b", flag_of, message)


def run(args: argparse.Namespace) -> int:
    """``hrm train``: train (or resume) and report where the checkpoint is."""
    if args.task not in TASK_NAMES:
        raise ValueError(f"unknown task {args.task!r}; known tasks: {', '.join(TASK_NAMES)}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    try:
        config = config_from_args(args)
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        trainer = Trainer(config, resume=args.resume)
    except ValueError as err:
        raise ValueError(name_flags(str(err))) from err
    if args.resume and trainer.world.is_main:
        print(f"resuming {trainer.out_dir} from step {trainer.step}", file=sys.stderr)
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
    from hrm_agent.cli import COMMANDS

    # The description ``hrm train --help`` shows, so both spellings print the same help.
    parser = argparse.ArgumentParser(prog="hrm train", description=COMMANDS["train"][1])
    add_arguments(parser)
    return run(parser.parse_args(argv))
