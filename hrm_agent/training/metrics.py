"""The numbers one training step reports, from its losses and outputs.

Owns the arithmetic of a step's metrics (``train.csv`` averages them over a window, see
:mod:`.logs`): loss terms as batch means, and accuracy, Q-halt agreement and segment counts
summed over the puzzles that halted at this step, all summed over ranks. Must not change
anything the step computes: it reads detached values and returns plain floats.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from hrm_agent.losses import LossParts
from hrm_agent.model import Outputs

__all__ = ["StepLosses", "step_metrics"]


class StepLosses(NamedTuple):
    """The losses of one step on this rank's rows."""

    parts: LossParts
    """Per-row terms of :func:`~hrm_agent.losses.hrm_loss` (q_continue 0 when delayed)."""
    q_continue: torch.Tensor
    """(b,) the q_continue loss that counts: ``parts.q_continue`` or the delayed one."""
    loss: torch.Tensor
    """Scalar: this rank's share of the global batch mean, to backpropagate."""


def step_metrics(
    losses: StepLosses,
    out: Outputs,
    labels: torch.Tensor,
    cell_mask: np.ndarray,
    segments: np.ndarray,
    halted: np.ndarray,
    world,
    batch_size: int,
    lr: float,
) -> dict[str, float]:
    """The step's metrics (see :meth:`~.trainer.Trainer.train_step`).

    Args:
        losses: this rank's losses.
        out: this rank's outputs of the segment.
        labels: (b, S) the answers it was supervised with.
        cell_mask: (b, S) bool, the cells that count for cell accuracy.
        segments: (b,) segments each of this rank's puzzles has run, this one included.
        halted: (b,) bool, this rank's puzzles that halted at this step.
        world: the process group (:mod:`.world`): its ``sum_`` adds a tensor over ranks.
        batch_size: the global batch size B.
        lr: the rate of the update.
    """
    parts, device = losses.parts, labels.device
    with torch.no_grad():
        h = torch.from_numpy(halted).to(device).float()
        preds = out.logits.argmax(-1)
        mask = torch.from_numpy(cell_mask).to(device)
        cell_acc = ((preds == labels) & mask).sum(-1) / mask.sum(-1).clamp_min(1)
        ran = torch.from_numpy(segments).to(device).float()
        sums = torch.stack(
            [
                parts.total.detach().sum(),
                parts.lm.detach().sum(),
                parts.q_halt.detach().sum(),
                losses.q_continue.detach().sum(),
                h.sum(),
                (cell_acc * h).sum(),
                (parts.seq_correct.float() * h).sum(),
                (parts.q_halt_accuracy.float() * h).sum(),
                (ran * h).sum(),
            ]
        ).double()
    sums = world.sum_(sums).cpu().tolist()
    B = batch_size
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
