"""Evaluation of an HRM on a puzzle set, cycle by cycle, and the ``hrm eval`` command.

Every puzzle is run from the fixed initial state through all ``N * max_segments`` high-level
cycles. After *each* cycle the answer is read out (``model.readout``), so the result holds the
accuracy curve over cycles, not only at the end:

* **max**: the answer after the last cycle (the paper's protocol: evaluation always runs the
  maximum number of segments);
* **Q halting**: the answer at the first segment end (every N cycles) where the Q head says
  halt (``q_halt > q_continue``), or at the maximum when it never does; with the mean number
  of cycles this took.

Shapes: B batch, S cells, V vocabulary, C cycles (N * max_segments).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hrm_agent.devices import (
    DEFAULT_INFERENCE_THREADS,
    check_batch_size,
    default_batch_size,
    resolve_device,
    set_inference_threads,
)
from hrm_agent.reasoner import load_model, shipped_checkpoint
from hrm_agent.sampling import (
    DEFAULT_DIVERSITY,
    Diversity,
    HaltTracker,
    Trajectories,
    TrajectoryNoise,
    add_diversity_arguments,
    check_samples,
    diversity_from_args,
    make_noise,
    make_views,
    repeat_rows,
    rule_accuracy,
)
from hrm_env.envs.reasoner import check_threads
from hrm_env.puzzles.tasks import PuzzleBatch, Task, get_task

__all__ = ["EvalResult", "CycleReadout", "evaluate", "iterate_cycles", "run", "add_arguments"]

HALT_MODES = ("max", "q")


@dataclass(frozen=True)
class CycleReadout:
    """The model's reading after one high-level cycle, for a batch."""

    cycle: int
    """1-based index of the cycle just run."""
    segment_end: bool
    """Whether this cycle closes a segment (where the Q head is trained and may halt)."""
    predictions: torch.Tensor
    """(B, S) int64 argmax answer."""
    q_halt: torch.Tensor
    """(B,) float32 halt logit."""
    q_continue: torch.Tensor
    """(B,) float32 continue logit."""
    logits: torch.Tensor | None = None
    """(B, S, V) the answer head's logits (``predictions`` is their argmax)."""


def iterate_cycles(
    model: Any,
    tokens: torch.Tensor,
    max_segments: int | None = None,
    noise: TrajectoryNoise | None = None,
) -> Iterator[CycleReadout]:
    """Run a batch from the initial state and yield the readout after every cycle.

    Runs under ``torch.inference_mode``; ``model`` is an ``HRM`` (anything with its
    ``initial_carry/embed/cycle/readout(carry, tokens)/config``).

    Args:
        model: the network.
        tokens: (B, S) integer puzzle tokens on the model's device.
        max_segments: segments to run (default: ``model.config.max_segments``).
        noise: diversity added around the model (``hrm_agent.sampling``): to the initial
            carry, to the carry entering every later cycle and to the injected input, and
            guessed digits written into the input after its ``guess_cycle``.

    Yields:
        One :class:`CycleReadout` per cycle, ``N * max_segments`` in all.
    """
    config = model.config
    segments = config.max_segments if max_segments is None else int(max_segments)
    if segments < 1:
        raise ValueError(f"max_segments must be >= 1, got {segments}")
    n_per_segment = config.h_cycles
    with torch.inference_mode():
        x = model.embed(tokens)
        carry = model.initial_carry(tokens.shape[0], tokens.device)
        if noise is not None:
            carry = noise.initial(carry)
        for index in range(segments * n_per_segment):
            if noise is None:
                carry = model.cycle(carry, x, tokens)
            else:
                start = noise.perturb(carry) if index else carry
                carry = model.cycle(start, noise.inject(x), tokens)
            out = model.readout(carry, tokens)
            level = None if noise is None else noise.guess_level(index + 1)
            if level is not None:
                # Later cycles read the guessed digits as givens (the readout above did not).
                tokens = noise.guess(tokens, out.logits, level)
                x = model.embed(tokens)
            yield CycleReadout(
                cycle=index + 1,
                segment_end=(index + 1) % n_per_segment == 0,
                predictions=out.logits.argmax(dim=-1),
                q_halt=out.q_halt,
                q_continue=out.q_continue,
                logits=out.logits,
            )


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Accuracy of a model on a puzzle set, after every cycle and under both halting rules."""

    task: str
    """Task name."""
    n: int
    """Number of puzzles evaluated."""
    cycles_per_segment: int
    """N, high-level cycles per segment (Q halting is decided every N cycles)."""
    max_cycles: int
    """C, cycles run per puzzle (N * max_segments)."""
    exact_per_cycle: np.ndarray
    """(C,) fraction of puzzles answered correctly after cycle 1..C."""
    cell_per_cycle: np.ndarray
    """(C,) mean cell accuracy (the task's scored cells) after cycle 1..C."""
    q_exact_accuracy: float
    """Exact accuracy when each puzzle halts by the Q head."""
    q_cell_accuracy: float
    """Cell accuracy when each puzzle halts by the Q head."""
    q_mean_cycles: float
    """Mean cycles run when halting by the Q head."""
    q_halt_accuracy: float
    """How often the sign of q_halt at the last cycle agrees with "the answer is correct"."""
    seconds: float
    """Wall time of the evaluation."""
    predictions: np.ndarray = field(repr=False)
    """(n, S) uint8 answers after the last cycle."""
    q_predictions: np.ndarray = field(repr=False)
    """(n, S) uint8 answers at the Q-head halt."""
    halt_cycles: np.ndarray = field(repr=False)
    """(n,) int cycle at which each puzzle halted by the Q head."""
    correct: np.ndarray = field(repr=False)
    """(n,) bool: correct after the last cycle."""
    samples: int = 1
    """K, trajectories per puzzle (trajectory 0 is the plain model; every figure above is
    trajectory 0's)."""
    diversity: str = "none"
    """Where the other trajectories' differences came from (``Diversity.label``)."""
    seed: int = 0
    """Seed of the trajectories' noise."""
    rules: dict[str, dict[str, float] | None] | None = None
    """Per selection rule (``hrm_agent.sampling.RULES``) over the K trajectories halting by
    their Q heads: ``exact_accuracy`` and ``mean_cycles`` (all K trajectories' cycles)."""
    trajectories: Trajectories | None = field(default=None, repr=False)
    """The K trajectories per puzzle at their Q-head halts."""
    path: dict[str, float] | None = None
    """Maze only: precision and recall of the predicted path cells against the reference
    path (micro-averaged over puzzles; a different path of the same length counts as misses),
    after the last cycle and at the Q halt, and ``copy_cell_accuracy``: the cell accuracy of
    answering with the unchanged input, the baseline that all-cell accuracy must beat."""

    @property
    def exact_accuracy(self) -> float:
        """Exact accuracy after the maximum number of cycles."""
        return float(self.exact_per_cycle[-1]) if self.n else 0.0

    @property
    def cell_accuracy(self) -> float:
        """Cell accuracy after the maximum number of cycles."""
        return float(self.cell_per_cycle[-1]) if self.n else 0.0

    def to_json(self, halt: str = "max") -> dict[str, Any]:
        """A JSON-ready summary.

        Args:
            halt: which rule the top-level ``exact_accuracy``, ``cell_accuracy`` and
                ``mean_cycles`` report: ``"max"`` (all cycles, the paper's protocol) or
                ``"q"`` (halting by the Q head). Both are always included in full.
        """
        if halt not in HALT_MODES:
            raise ValueError(f"halt must be one of {HALT_MODES}, got {halt!r}")
        at_max = {
            "exact_accuracy": self.exact_accuracy,
            "cell_accuracy": self.cell_accuracy,
            "mean_cycles": float(self.max_cycles),
        }
        at_q = {
            "exact_accuracy": self.q_exact_accuracy,
            "cell_accuracy": self.q_cell_accuracy,
            "mean_cycles": self.q_mean_cycles,
            "halt_accuracy": self.q_halt_accuracy,
        }
        top = at_max if halt == "max" else at_q
        return {
            "task": self.task,
            "n": self.n,
            "halt": halt,
            "exact_accuracy": top["exact_accuracy"],
            "cell_accuracy": top["cell_accuracy"],
            "mean_cycles": top["mean_cycles"],
            "seconds": self.seconds,
            "cycles_per_segment": self.cycles_per_segment,
            "max_cycles": self.max_cycles,
            "max": at_max,
            "q_halting": at_q,
            "accuracy_per_cycle": [float(v) for v in self.exact_per_cycle],
            "cell_accuracy_per_cycle": [float(v) for v in self.cell_per_cycle],
            # Only with several trajectories: with one, every rule is the plain figure above.
            **(
                {}
                if self.samples == 1
                else {
                    "samples": {
                        "k": self.samples,
                        "seed": self.seed,
                        "diversity": self.diversity,
                        "rules": None if self.rules is None else dict(self.rules),
                    }
                }
            ),
            **({} if self.path is None else {"path": dict(self.path)}),
        }


def evaluate(
    model: Any,
    task: Task | str,
    batch: PuzzleBatch,
    max_segments: int | None = None,
    device: torch.device | str | None = None,
    batch_size: int | None = None,
    progress: bool = False,
    samples: int = 1,
    diversity: Diversity | None = None,
    seed: int = 0,
    first_index: int = 0,
) -> EvalResult:
    """Run every puzzle through all cycles and score it after each one.

    Args:
        model: an ``HRM`` (its train/eval mode is restored afterwards).
        task: the task (or its name) that scores answers.
        batch: the puzzles and their reference answers.
        max_segments: segments per puzzle (default: the model's ``max_segments``).
        device: where to run (``"auto"``, ``"cpu"``, ``"cuda:1"``, ...); the model is moved
            there (default: where it is).
        batch_size: puzzles per forward pass (default: ``devices.default_batch_size``, 16
            rows on a CPU, where wider batches cost more per row, 256 puzzles on a GPU).
        progress: show a tqdm bar over batches.
        samples: trajectories per puzzle, run in the same batch (``batch_size`` puzzles times
            ``samples`` rows); the per-cycle and halting figures are trajectory 0's (the plain
            model's), ``rules`` scores the selection rules over all of them.
        diversity: their noise (default ``sampling.DEFAULT_DIVERSITY``).
        seed: seed of the noise (same seed and batch size, same answers).
        first_index: the position of ``batch``'s first puzzle in a larger set it is a shard
            of: the noise of each batch is seeded by its position in that set, so shards
            that start at multiples of ``batch_size`` give the answers of one whole run.

    Returns:
        The :class:`EvalResult`.

    Raises:
        ValueError: if the puzzles do not fit the model or the task, ``batch_size < 1``, or
            the device is one this torch build cannot run on.
    """
    task = get_task(task) if isinstance(task, str) else task
    check_batch_size(batch_size)
    config = model.config
    if batch.inputs.shape[1] != task.seq_len or task.seq_len != config.seq_len:
        raise ValueError(
            f"puzzles of {batch.inputs.shape[1]} cells do not fit task {task.name!r} "
            f"({task.seq_len} cells) and model ({config.seq_len} cells)"
        )
    if device is not None:
        model.to(resolve_device(device))
    device = next(model.parameters()).device
    segments = config.max_segments if max_segments is None else int(max_segments)
    n_cycles = segments * config.h_cycles
    n = len(batch)
    samples = check_samples(samples)
    if batch_size is None:
        batch_size = default_batch_size(device, samples)

    exact_hits = np.zeros(n_cycles, dtype=np.int64)
    cell_sums = np.zeros(n_cycles, dtype=np.float64)
    final_preds = np.zeros(batch.inputs.shape, dtype=np.uint8)
    q_preds = np.zeros(batch.inputs.shape, dtype=np.uint8)
    halt_cycles = np.zeros(n, dtype=np.int64)
    correct = np.zeros(n, dtype=bool)
    q_halt_agree = 0
    parts: list[Trajectories] = []

    was_training = model.training
    model.eval()
    start = time.perf_counter()
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"eval {task.name}", unit="batch", leave=False)
    try:
        for lo in starts:
            hi = min(lo + batch_size, n)
            inputs, targets = batch.inputs[lo:hi], batch.targets[lo:hi]
            rows = repeat_rows(torch.from_numpy(inputs.astype(np.int64)).to(device), samples)
            # One seed per batch, from the seed and the batch's start: reproducible per batch.
            position = first_index + lo
            batch_seed = int(np.random.SeedSequence([seed, position]).generate_state(1)[0])
            noise = make_noise(diversity, hi - lo, samples, batch_seed, device, task.blank_token)
            shown = make_views(diversity, task.views, hi - lo, samples, device)
            if shown is not None:
                rows = shown.show(rows)
            tracker = HaltTracker(rows.shape[0], rows.shape[1], n_cycles)
            for r in iterate_cycles(model, rows, segments, noise=noise):
                cells = r.predictions if shown is None else shown.back(r.predictions)
                every = cells.to(torch.uint8).cpu().numpy()  # (B * K, S), own frames
                tracker.update(r, every)
                preds = every[::samples]  # trajectory 0 of each puzzle
                ok = np.asarray(task.is_correct(inputs, preds, targets), dtype=bool)
                exact_hits[r.cycle - 1] += int(ok.sum())
                cell_sums[r.cycle - 1] += float(task.cell_accuracy(inputs, preds, targets).sum())
                if r.cycle == n_cycles:
                    final_preds[lo:hi] = preds
                    correct[lo:hi] = ok
                    q_final = r.q_halt[::samples].cpu().numpy()
                    q_halt_agree += int(((q_final > 0) == ok).sum())
            # Q halting: the first segment end where halting beats continuing, else the last.
            q_preds[lo:hi] = tracker.answers[::samples]
            halt_cycles[lo:hi] = tracker.cycles[::samples]
            parts.append(Trajectories.from_tracker(tracker, samples))
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - start

    path = None
    if task.name == "maze":
        path = {
            **_path_scores(batch.targets, final_preds, ""),
            **_path_scores(batch.targets, q_preds, "q_"),
            "copy_cell_accuracy": float(
                np.sum(task.cell_accuracy(batch.inputs, batch.inputs, batch.targets)) / max(n, 1)
            ),
        }
    denominator = max(n, 1)
    trajectories = Trajectories.concat(parts) if parts else None
    rules = (
        None
        if trajectories is None
        else rule_accuracy(task, batch.inputs, batch.targets, trajectories)
    )
    q_ok = np.asarray(task.is_correct(batch.inputs, q_preds, batch.targets), dtype=bool)
    q_cells = task.cell_accuracy(batch.inputs, q_preds, batch.targets)
    return EvalResult(
        task=task.name,
        n=n,
        cycles_per_segment=config.h_cycles,
        max_cycles=n_cycles,
        exact_per_cycle=exact_hits / denominator,
        cell_per_cycle=cell_sums / denominator,
        q_exact_accuracy=float(q_ok.sum() / denominator),
        q_cell_accuracy=float(np.sum(q_cells) / denominator),
        q_mean_cycles=float(halt_cycles.sum() / denominator),
        q_halt_accuracy=q_halt_agree / denominator,
        seconds=seconds,
        predictions=final_preds,
        q_predictions=q_preds,
        halt_cycles=halt_cycles,
        correct=correct,
        samples=samples,
        diversity=(DEFAULT_DIVERSITY if diversity is None else diversity).label()
        if samples > 1
        else "none",
        seed=seed,
        rules=rules,
        trajectories=trajectories,
        path=path,
    )


def _path_scores(targets: np.ndarray, preds: np.ndarray, prefix: str) -> dict[str, float]:
    """Micro precision and recall of the maze path cells (token ``PATH``) of ``preds``."""
    from hrm_env.puzzles.maze import PATH

    predicted, reference = preds == PATH, targets == PATH
    hits = int((predicted & reference).sum())
    n_pred, n_ref = int(predicted.sum()), int(reference.sum())
    return {
        # No predicted path at all scores 0, not an undefined (or flattering) precision.
        f"{prefix}path_precision": hits / n_pred if n_pred else 0.0,
        f"{prefix}path_recall": hits / n_ref if n_ref else 0.0,
    }


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hrm eval``."""
    parser.add_argument("task", help="task name: sudoku, sudoku-mini or maze")
    parser.add_argument(
        "--data",
        default=None,
        help="puzzle file (CSV, or .txt for Sudoku) or a bundled test set by name (sudoku: "
        "extreme, extreme-mix); default: the task's bundled test set (sudoku: extreme)",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint path stem (STEM.safetensors + STEM.json); default: the shipped one",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="puzzles per forward pass (default: 16 rows on a CPU, 256 puzzles on a GPU)",
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device: auto, cpu, cuda, cuda:1, mps (default cpu)"
    )
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N puzzles")
    parser.add_argument(
        "--start",
        type=int,
        default=0,
        help="skip the first N puzzles (with --limit: a shard; its noise follows each "
        "puzzle's position in the whole set, so shards run apart give one run's answers)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=DEFAULT_INFERENCE_THREADS,
        help=f"CPU threads for torch (default {DEFAULT_INFERENCE_THREADS}; 0: torch's default, "
        "a thread per core; see benchmarks/bench_threads.py)",
    )
    parser.add_argument(
        "--max-segments",
        type=int,
        default=None,
        help="segments per puzzle (default: the checkpoint's max_segments)",
    )
    parser.add_argument(
        "--halt",
        choices=HALT_MODES,
        default="max",
        help="halting rule of the headline figures: max (all cycles) or q (the Q head)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (off anyway when not a TTY)"
    )
    add_diversity_arguments(parser)
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the trajectories' noise (default 0)"
    )


def run(args: argparse.Namespace) -> int:
    """``hrm eval``: evaluate a checkpoint and print the figures (table or JSON)."""
    task = get_task(args.task)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.start < 0:
        raise ValueError(f"--start must be >= 0, got {args.start}")
    if args.max_segments is not None and args.max_segments < 1:
        raise ValueError(f"--max-segments must be >= 1, got {args.max_segments}")
    diversity = diversity_from_args(args)
    check_threads(args.threads, "--threads")
    # The model first: a wrong or corrupt checkpoint fails before any data is read.
    model, meta = load_model(task.name, args.checkpoint, args.device)
    set_inference_threads(args.threads, model.device, "--threads")
    data = task.eval_data(args.data)
    total = len(data)
    data = data[args.start : None if args.limit is None else args.start + args.limit]
    if len(data) == 0:
        raise ValueError(f"no puzzles to evaluate (the set has {total}, --start {args.start})")
    show_progress = not args.no_progress and sys.stderr.isatty()
    result = evaluate(
        model,
        task,
        data,
        max_segments=args.max_segments,
        batch_size=args.batch_size,
        progress=show_progress,
        samples=args.samples,
        diversity=diversity,
        seed=args.seed,
        first_index=args.start,
    )
    summary = result.to_json(args.halt)
    summary["data"] = "test set" if args.data is None else str(args.data)
    summary["start"] = args.start
    summary["checkpoint"] = (
        str(shipped_checkpoint(task.name)) if args.checkpoint is None else str(args.checkpoint)
    )
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_table(result, summary))
    return 0


def format_table(result: EvalResult, summary: dict[str, Any]) -> str:
    """A readable report of an evaluation."""
    lines = [
        f"task {result.task}   puzzles {result.n}   data {summary.get('data', '?')}",
        f"checkpoint {summary.get('checkpoint', '?')}   {result.seconds:.1f} s",
        "",
        f"{'halting':<16}{'exact':>8}{'cells':>8}{'cycles':>9}",
        f"{'max cycles':<16}{result.exact_accuracy:>8.3f}{result.cell_accuracy:>8.3f}"
        f"{result.max_cycles:>9.2f}",
        f"{'Q head':<16}{result.q_exact_accuracy:>8.3f}{result.q_cell_accuracy:>8.3f}"
        f"{result.q_mean_cycles:>9.2f}",
        *(
            []
            if result.path is None
            else [
                f"path cells: precision {result.path['path_precision']:.3f} recall "
                f"{result.path['path_recall']:.3f} (max cycles), "
                f"{result.path['q_path_precision']:.3f} / {result.path['q_path_recall']:.3f} "
                f"(Q head); copying the input scores cells "
                f"{result.path['copy_cell_accuracy']:.3f}"
            ]
        ),
        *_format_rules(result),
        "",
        f"{'cycle':>5}{'exact':>8}{'cells':>8}",
    ]
    for c in range(result.max_cycles):
        marker = " |" if (c + 1) % result.cycles_per_segment == 0 else ""
        lines.append(
            f"{c + 1:>5}{result.exact_per_cycle[c]:>8.3f}{result.cell_per_cycle[c]:>8.3f}{marker}"
        )
    lines.append("(| marks a segment end, where the Q head may halt)")
    return "\n".join(lines)


def _format_rules(result: EvalResult) -> list[str]:
    """The selection rules' lines of the table (none for a single trajectory)."""
    if result.samples == 1 or result.rules is None:
        return []
    lines = [
        "",
        f"{result.samples} trajectories per puzzle (noise: {result.diversity}, seed "
        f"{result.seed}), each halting by its Q head; one answer picked by",
        f"{'rule':<34}{'exact':>8}{'cycles':>9}",
    ]
    names = {
        "q": "highest q_halt (model)",
        "first": "first to halt (model)",
        "vote": "majority vote (model)",
        "checker": "rule checker (pass@K, bound)",
    }
    for rule, figures in result.rules.items():
        if figures is not None:
            lines.append(
                f"{names[rule]:<34}{figures['exact_accuracy']:>8.3f}{figures['mean_cycles']:>9.1f}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    """``python -m hrm_agent.evaluate ...`` (same as ``hrm eval ...``)."""
    parser = argparse.ArgumentParser(prog="hrm eval", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
