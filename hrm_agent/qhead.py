"""Q-head fine-tuning: the package's own reinforcement-learning baseline for halting.

The HRM halts by its Q head (``q_halt > q_continue``), trained during HRM training by
Q-learning at segment ends. Here the backbone is frozen and only the Q head (one linear layer
on z_H at the prefix position) is trained further, on the halting env's own transitions: one
per high-level cycle, the cycle the env steps by, up to the env's ``max_cycles``. So the head
learns to halt at every cycle of the horizon the env runs, not only at segment ends.

Targets, as in training (``hrm_agent.losses``, paper Sec. "Adaptive computational time"):

* ``q_halt`` after cycle c -> "the answer after cycle c is fully correct";
* ``q_continue`` after cycle c -> the best Q one cycle later,
  ``sigmoid(max(q_halt, q_continue))`` of cycle c + 1, or only ``sigmoid(q_halt)`` of cycle
  c + 1 when c + 1 = ``max_cycles`` (the env halts there by itself); computed with
  :func:`hrm_agent.losses.q_targets` from the head being trained, without gradient and without
  a target network, as the trainer does. After the last cycle continuing is impossible, so
  there is no q_continue target there (the trainer, which has no horizon of its own, bootstraps
  that one too).

Because the backbone is frozen the Q head's input does not change while it trains, so each
cycle's input (z_H at the prefix) is collected once, with the answer's correctness, and the
head is trained on those transitions for as many steps as wanted.

Shapes: P puzzles, C cycles (the env's ``max_cycles``), D hidden, B minibatch of puzzles.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hrm_agent.checkpoint import load_checkpoint, save_checkpoint
from hrm_agent.devices import resolve_device
from hrm_agent.losses import q_targets
from hrm_agent.model import HRM
from hrm_agent.policies import RecordedReasoner
from hrm_agent.reasoner import TorchReasoner, TorchState
from hrm_env.puzzles.tasks import PuzzleBatch, Task, get_task

__all__ = [
    "Transitions",
    "QHeadLoss",
    "FinetuneResult",
    "prefix_features",
    "collect_transitions",
    "transitions_from_recording",
    "q_head_loss",
    "train_q_head",
    "finetune_q_head",
    "finetune_checkpoint",
    "head_q_values",
]


def prefix_features(state: TorchState) -> np.ndarray:
    """(B, D) float32: z_H at the prefix position, the Q head's input, from a reasoner state."""
    return state.carry.z_H[:, 0].float().cpu().numpy()


@dataclass(frozen=True)
class Transitions:
    """The env's transitions for Q-head training, one per puzzle and cycle.

    Attributes:
        features: (P, C, D) float32 z_H at the prefix after each cycle (the Q head's input).
        correct: (P, C) bool: the answer after each cycle is correct.
        q: (P, C, 2) float32 the Q values the model gave there (before fine-tuning).
    """

    features: np.ndarray
    correct: np.ndarray
    q: np.ndarray

    def __post_init__(self) -> None:
        P, C = self.correct.shape
        if self.features.ndim != 3 or self.features.shape[:2] != (P, C):
            raise ValueError(f"features must be ({P}, {C}, D), got {self.features.shape}")
        if self.q.shape != (P, C, 2):
            raise ValueError(f"q must be ({P}, {C}, 2), got {self.q.shape}")


def collect_transitions(
    reasoner: TorchReasoner,
    puzzles: PuzzleBatch,
    max_cycles: int,
    batch_size: int = 64,
    progress: bool = False,
) -> tuple[Transitions, RecordedReasoner]:
    """Run every puzzle for ``max_cycles`` cycles, as the env does, and keep the transitions.

    Returns:
        The transitions and the recording they came from (which can replay these cycles to
        an env, e.g. to evaluate the fine-tuned head without running the model again).
    """
    recording = RecordedReasoner.record(
        reasoner, puzzles, max_cycles, batch_size, features=prefix_features, progress=progress
    )
    return transitions_from_recording(recording), recording


def transitions_from_recording(
    recording: RecordedReasoner, max_cycles: int | None = None
) -> Transitions:
    """The transitions held by a recording made with answers and ``prefix_features``.

    Args:
        recording: the recording.
        max_cycles: the env's horizon (default: every recorded cycle).

    Raises:
        ValueError: when the recording lacks the features or the answers, or is too short.
    """
    if recording.features is None:
        raise ValueError(
            "the recording holds no Q-head features; record it with "
            "features=hrm_agent.qhead.prefix_features"
        )
    C = recording.num_cycles if max_cycles is None else int(max_cycles)
    if not 1 <= C <= recording.num_cycles:
        raise ValueError(f"max_cycles must lie in 1..{recording.num_cycles}, got {C}")
    correct = recording.correct()[:, :C]
    return Transitions(recording.features[:, :C], correct, recording.q[:, :C])


class QHeadLoss(NamedTuple):
    """Q-learning loss of the head: ``total = 0.5 * (halt + continue_)`` (the Q part of
    ``hrm_loss``); all scalars."""

    total: torch.Tensor
    halt: torch.Tensor
    continue_: torch.Tensor
    halt_accuracy: torch.Tensor
    """Fraction of (puzzle, cycle) where ``q_halt > 0`` agrees with "correct"."""


def q_head_loss(q: torch.Tensor, correct: torch.Tensor, step_cost: float = 0.0) -> QHeadLoss:
    """Q-learning loss over whole trajectories of C cycles (C = the env's ``max_cycles``).

    Args:
        q: (B, C, 2) Q logits (halt, continue) after each cycle, with gradient.
        correct: (B, C) bool, the answer after each cycle is correct.
        step_cost: taken off the value of continuing (see :func:`~hrm_agent.losses.q_targets`).

    Returns:
        :class:`QHeadLoss`; q_continue is scored on cycles 1..C-1 against
        :func:`~hrm_agent.losses.q_targets` of the next cycle (``is_last`` where the next
        cycle is cycle C), and not at all when C = 1.
    """
    if q.dim() != 3 or q.shape[2] != 2:
        raise ValueError(f"q must be (B, C, 2), got {tuple(q.shape)}")
    if correct.shape != q.shape[:2]:
        raise ValueError(f"correct must be {tuple(q.shape[:2])}, got {tuple(correct.shape)}")
    B, C, _ = q.shape
    q = q.float()
    y = correct.float()
    halt = F.binary_cross_entropy_with_logits(q[..., 0], y)
    if C > 1:
        nxt = q[:, 1:].detach()  # (B, C-1, 2) the next cycle's Q values
        is_last = torch.zeros(B, C - 1, dtype=torch.bool, device=q.device)
        is_last[:, -1] = True  # the next cycle is C: the env halts there, only q_halt counts
        target = q_targets(
            nxt[..., 0].reshape(-1), nxt[..., 1].reshape(-1), is_last.reshape(-1), step_cost
        )
        continue_ = F.binary_cross_entropy_with_logits(q[:, :-1, 1].reshape(-1), target)
    else:
        continue_ = torch.zeros((), device=q.device)
    with torch.no_grad():
        halt_accuracy = ((q[..., 0] > 0) == correct.bool()).float().mean()
    return QHeadLoss(0.5 * (halt + continue_), halt, continue_, halt_accuracy)


def head_q_values(head: nn.Module, features: np.ndarray | torch.Tensor) -> np.ndarray:
    """(..., 2) float32 Q values of ``head`` on (..., D) features, as numpy."""
    device = next(head.parameters()).device
    x = torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device)
    with torch.no_grad():
        return head(x).float().cpu().numpy()


def _full_loss(head: nn.Module, transitions: Transitions, step_cost: float = 0.0) -> QHeadLoss:
    device = next(head.parameters()).device
    x = torch.from_numpy(transitions.features).to(device)
    y = torch.from_numpy(transitions.correct).to(device)
    with torch.no_grad():
        return q_head_loss(head(x), y, step_cost)


def train_q_head(
    head: nn.Module,
    transitions: Transitions,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    generator: torch.Generator | None = None,
    progress: bool = False,
    step_cost: float = 0.0,
) -> list[float]:
    """Train ``head`` in place on the transitions with AdamW; minibatches of whole puzzles.

    Returns:
        The minibatch loss of every step.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(head.parameters()).device
    x = torch.from_numpy(transitions.features).to(device)  # (P, C, D)
    y = torch.from_numpy(transitions.correct).to(device)  # (P, C)
    P = x.shape[0]
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    losses: list[float] = []
    iterator: Sequence[int] = range(steps)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="q-head", unit="step", leave=False)
    was_training = head.training
    head.train()
    try:
        for _ in iterator:
            rows = torch.randint(0, P, (min(batch_size, P),), generator=generator)
            parts = q_head_loss(head(x[rows.to(device)]), y[rows.to(device)], step_cost)
            optimizer.zero_grad(set_to_none=True)
            parts.total.backward()
            optimizer.step()
            losses.append(float(parts.total.detach()))
    finally:
        head.train(was_training)
    return losses


@dataclass(frozen=True, eq=False)
class FinetuneResult:
    """What :func:`finetune_q_head` did.

    Attributes:
        model: a copy of the model with the fine-tuned Q head (the backbone untouched).
        losses: minibatch loss per step.
        before: loss and halt accuracy of the original head on all transitions.
        after: the same for the fine-tuned head.
        meta: a JSON-ready note for the checkpoint (settings and the numbers above).
        recording: the cycles the transitions came from (replays the *original* Q values;
            use ``recording.with_q(head_q_values(model.q_head, recording.features))``).
    """

    model: HRM
    losses: list[float]
    before: dict[str, float]
    after: dict[str, float]
    meta: dict[str, Any]
    recording: RecordedReasoner = field(repr=False)


def _loss_summary(parts: QHeadLoss) -> dict[str, float]:
    return {
        "loss": float(parts.total),
        "halt_loss": float(parts.halt),
        "continue_loss": float(parts.continue_),
        "halt_accuracy": float(parts.halt_accuracy),
    }


def finetune_q_head(
    model: HRM,
    task: str | Task,
    steps: int = 2000,
    n_puzzles: int = 1024,
    max_cycles: int = 16,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    difficulty: str | None = None,
    puzzles: PuzzleBatch | None = None,
    recording: RecordedReasoner | None = None,
    device: torch.device | str | None = None,
    progress: bool = False,
    step_cost: float = 0.0,
) -> FinetuneResult:
    """Fine-tune only the Q head of ``model`` on the halting env's transitions.

    Args:
        model: the HRM (left unchanged; a copy is trained).
        task: the task (or its name).
        steps: optimizer steps.
        n_puzzles: fresh training puzzles to collect (``task.sample``, never the test set).
        max_cycles: the env's horizon: cycles per puzzle.
        batch_size: puzzles per minibatch.
        lr: AdamW learning rate.
        seed: seeds the puzzle draw and the minibatch order.
        difficulty: tier to draw from (default: the task's default).
        puzzles: use these puzzles instead of drawing ``n_puzzles``.
        recording: take the transitions from this recording of ``model`` (made from a
            ``PuzzleBatch`` with ``prefix_features``) instead of running the model.
        device: where to run (default: the model's device).
        progress: show progress bars.
        step_cost: taken off the value of continuing in the q_continue targets (0: the
            paper's targets; the env's ``step_cost`` makes the head halt once nothing is left
            to gain).

    Returns:
        The :class:`FinetuneResult`.
    """
    spec = get_task(task) if isinstance(task, str) else task
    if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 1:
        raise ValueError(f"max_cycles must be an integer >= 1, got {max_cycles!r}")
    if recording is not None and puzzles is not None:
        raise ValueError("give either puzzles or recording, not both")
    if puzzles is None and recording is None:
        if n_puzzles < 1:
            raise ValueError(f"n_puzzles must be >= 1, got {n_puzzles}")
        puzzles = spec.sample(np.random.default_rng([seed, 5]), n_puzzles, difficulty)
    tuned = copy.deepcopy(model)
    if device is not None:
        tuned = tuned.to(resolve_device(device))
    tuned.eval()
    if recording is None:
        assert puzzles is not None
        reasoner = TorchReasoner(tuned, spec.name)
        transitions, recording = collect_transitions(
            reasoner, puzzles, max_cycles, progress=progress
        )
    else:
        if recording.task != spec.name:
            raise ValueError(f"the recording is of task {recording.task!r}, not {spec.name!r}")
        transitions = transitions_from_recording(recording, max_cycles)
        # The recording must come from this very model: its Q values are this head's.
        q_now = head_q_values(tuned.q_head, transitions.features)
        if not np.allclose(q_now, transitions.q, rtol=0.05, atol=0.1):
            raise ValueError("the recording was not made with this model (its Q values differ)")
    head = tuned.q_head
    before = _loss_summary(_full_loss(head, transitions, step_cost))
    generator = torch.Generator().manual_seed(seed)
    losses = train_q_head(
        head, transitions, steps, batch_size=batch_size, lr=lr, generator=generator,
        progress=progress, step_cost=step_cost,
    )  # fmt: skip
    head.eval()
    after = _loss_summary(_full_loss(head, transitions, step_cost))
    meta = {
        "q_head_finetune": {
            "note": (
                "Q head fine-tuned on the halting env's per-cycle transitions with the "
                "backbone frozen (hrm_agent.qhead); every other weight is the base model's"
            ),
            "task": spec.name,
            "steps": int(steps),
            "puzzles": int(transitions.correct.shape[0]),
            "max_cycles": int(max_cycles),
            "batch_size": int(batch_size),
            "lr": float(lr),
            "step_cost": float(step_cost),
            "seed": int(seed),
            "before": before,
            "after": after,
            "fraction_correct": float(transitions.correct.mean()),
        }
    }
    return FinetuneResult(tuned, losses, before, after, meta, recording)


def finetune_checkpoint(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    task: str | None = None,
    **kwargs: Any,
) -> FinetuneResult:
    """Load a checkpoint, fine-tune its Q head (:func:`finetune_q_head`) and save the result.

    Args:
        checkpoint: path stem of the base checkpoint.
        out: path stem to write (``out.safetensors`` + ``out.json``); the JSON meta keeps the
            base's meta and adds ``q_head_finetune`` (with ``base`` naming the checkpoint).
        task: the task (default: the checkpoint's).
        **kwargs: passed to :func:`finetune_q_head`.
    """
    model, _, meta = load_checkpoint(checkpoint)
    task = task or meta.get("task")
    if task is None:
        raise ValueError(f"checkpoint {checkpoint} names no task; pass task=")
    result = finetune_q_head(model, task, **kwargs)
    result.meta["q_head_finetune"]["base"] = os.fspath(checkpoint)
    new_meta = {k: v for k, v in meta.items() if k != "task"}
    new_meta.update(result.meta)
    save_checkpoint(Path(out), result.model.cpu(), meta=new_meta, task=task)
    return result
