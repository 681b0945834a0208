"""Losses of HRM training: cell cross-entropies, Q-learning halting targets, the total.

All functions are pure (no module state, no RNG). For one segment of deep supervision:

* ``lm``: cross-entropy of every supervised cell, averaged over a sample's supervised cells;
* ``q_halt``: BCE of the halt logit against "this segment's whole answer is correct";
* ``q_continue``: BCE of the continue logit against a bootstrapped target from the *next*
  segment (:func:`q_targets`; no replay buffer or target network: the large batch of parallel
  puzzles plays that role, as in the paper's code), or the same target fitted one step late
  (:func:`delayed_q_continue_loss`);
* ``total = lm + 0.5 * (q_halt + q_continue)`` (paper, Sec. "Adaptive computational time").

Shapes: B batch, S cells, V vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from hrm_agent.model import Outputs

REDUCTIONS = ("mean", "sum", "none")
SEGMENT_WEIGHTINGS = ("uniform", "linear")


def stablemax(x: torch.Tensor) -> torch.Tensor:
    """The stablemax transfer ``s(x) = x + 1`` for ``x >= 0`` else ``1 / (1 - x)``.

    Positive, increasing and only linear for large x, so the normalised probabilities cannot
    saturate numerically the way exp does (the "softmax collapse" of long training on small
    data, Prieto et al. 2025, used by the HRM paper).
    """
    return torch.where(x >= 0, x + 1, 1 / (1 - x.clamp_max(0)))


def log_stablemax(logits: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(s(x) / sum s(x))`` along ``dim``, computed in float64 (float32 on MPS).

    ``log s(x)`` is ``log1p(x)`` or ``-log1p(-x)``; each branch is fed clamped values so that
    neither produces NaN/inf gradients for the elements it does not own.
    """
    dtype = torch.float32 if logits.device.type == "mps" else torch.float64
    x = logits.to(dtype)
    log_s = torch.where(x >= 0, torch.log1p(x.clamp_min(0)), -torch.log1p((-x).clamp_min(0)))
    return log_s - torch.logsumexp(log_s, dim=dim, keepdim=True)


def _check_labels(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None) -> None:
    if logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} must equal logits shape without the vocabulary "
            f"dimension, {tuple(logits.shape[:-1])}"
        )
    if mask is not None and mask.shape != labels.shape:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} must equal labels shape {tuple(labels.shape)}"
        )


def _cell_nll(
    log_probs: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    labels = labels.long()
    if mask is not None:
        labels = torch.where(mask, labels, 0)  # unsupervised cells may hold any value
    nll = -log_probs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if mask is not None:
        nll = torch.where(mask, nll, 0.0)
    return nll.float()


def stablemax_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-cell stablemax cross-entropy.

    Args:
        logits: (..., V) scores.
        labels: (...) integer targets.
        mask: (...) bool, True where the cell is supervised; None supervises every cell.

    Returns:
        (...) float32 loss, 0 at unsupervised cells.
    """
    _check_labels(logits, labels, mask)
    return _cell_nll(log_stablemax(logits), labels, mask)


def softmax_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-cell softmax cross-entropy in float32; same arguments as the stablemax version."""
    _check_labels(logits, labels, mask)
    return _cell_nll(torch.log_softmax(logits.float(), dim=-1), labels, mask)


CELL_LOSSES = {"stablemax": stablemax_cross_entropy, "softmax": softmax_cross_entropy}


def q_targets(
    next_q_halt: torch.Tensor,
    next_q_continue: torch.Tensor,
    is_last: torch.Tensor | bool,
    step_cost: float = 0.0,
) -> torch.Tensor:
    """Bootstrapped target (a probability) for this segment's q_continue.

    The value of continuing is the value of the best action one segment later,
    ``sigmoid(max(next_q_halt, next_q_continue))``; where ``is_last`` the sample has reached
    the segment limit and would have to halt, so only ``sigmoid(next_q_halt)`` counts. Following
    the paper's equation and its reference code, ``is_last`` is "this segment's index has
    reached ``max_segments``".

    ``step_cost`` (0 in the paper) is taken off the value of continuing, as the halting env
    charges each continue: the target becomes ``max(0, that - step_cost)``. Without it, a
    puzzle already solved has equal values for halting and continuing, and a bootstrapped
    q_continue can climb above q_halt there, so the model never halts.

    Args:
        next_q_halt: (B,) halt logits of the next segment (computed without gradient).
        next_q_continue: (B,) continue logits of the next segment.
        is_last: (B,) bool or a Python bool for the whole batch.
        step_cost: the cost of one more step, in reward units (>= 0).

    Returns:
        (B,) float32 targets in [0, 1], detached.
    """
    if next_q_halt.shape != next_q_continue.shape or next_q_halt.dim() != 1:
        raise ValueError(
            f"next_q_halt and next_q_continue must both be (B,), got "
            f"{tuple(next_q_halt.shape)} and {tuple(next_q_continue.shape)}"
        )
    is_last = torch.as_tensor(is_last, device=next_q_halt.device, dtype=torch.bool)
    if is_last.dim() and is_last.shape != next_q_halt.shape:
        raise ValueError(f"is_last must be a bool or (B,), got shape {tuple(is_last.shape)}")
    if not step_cost >= 0:
        raise ValueError(f"step_cost must be >= 0, got {step_cost}")
    best = torch.where(is_last, next_q_halt, torch.maximum(next_q_halt, next_q_continue))
    value = torch.sigmoid(best.detach().float())
    return (value - step_cost).clamp_min(0.0) if step_cost else value


def segment_weights(
    segment: torch.Tensor, max_segments: int, rule: str = "uniform"
) -> torch.Tensor:
    """(B,) weight of each sample's cell loss by the index of its segment.

    Deep supervision asks for the whole answer after every segment, even the first, before
    information can have crossed a large grid; ``linear`` weighs segment s (1-based) by
    ``2 s / (M + 1)``, which averages to 1 over a full run of M segments, so an early guess
    costs less than a late one and the mean scale of the loss is kept. ``uniform``: all 1.

    Args:
        segment: (B,) int, 1-based index of the segment each sample is in.
        max_segments: M, the ACT limit.
        rule: ``uniform`` or ``linear``.
    """
    if rule not in SEGMENT_WEIGHTINGS:
        raise ValueError(f"segment weighting must be one of {SEGMENT_WEIGHTINGS}, got {rule!r}")
    if max_segments < 1:
        raise ValueError(f"max_segments must be >= 1, got {max_segments}")
    if rule == "uniform":
        return torch.ones(segment.shape, dtype=torch.float32, device=segment.device)
    return 2.0 * segment.float().clamp(1, max_segments) / (max_segments + 1)


def aux_loss(aux_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) softmax cross-entropy of an auxiliary per-cell target, averaged over each
    sample's labelled cells (``labels >= 0``; a sample without any gives 0).

    Args:
        aux_logits: (B, S, C) scores.
        labels: (B, S) integer classes, -1 where a cell has no label.
    """
    if aux_logits.shape[:-1] != labels.shape:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} must equal aux_logits shape without the class "
            f"dimension, {tuple(aux_logits.shape[:-1])}"
        )
    labelled = labels >= 0
    nll = _cell_nll(torch.log_softmax(aux_logits.float(), dim=-1), labels, labelled)
    return nll.sum(-1) / labelled.sum(-1).clamp_min(1).float()


def delayed_q_continue_loss(
    q_continue: torch.Tensor,
    valid: torch.Tensor,
    next_q_halt: torch.Tensor,
    next_q_continue: torch.Tensor,
    step_cost: float = 0.0,
) -> torch.Tensor:
    """Per-sample BCE of a segment's q_continue, fitted one step late (the ``delayed`` bootstrap).

    Instead of running an extra segment without gradient to read the next Q values, the
    trainer keeps the state the Q head read for a segment and, at the puzzle's next training
    step, re-reads its q_continue (with the current head) against that step's own Q values.
    The target is the one :func:`q_targets` gives with ``is_last=False``: a segment at the
    limit halts, so it has no next step and its row is not ``valid``.

    Args:
        q_continue: (B,) continue logits re-read from the stored states (with gradient).
        valid: (B,) bool, True where the puzzle is still the one that state belongs to.
        next_q_halt: (B,) halt logits of this step's segment.
        next_q_continue: (B,) continue logits of this step's segment.
        step_cost: taken off the value of continuing, as in :func:`q_targets`.

    Returns:
        (B,) float32 loss, 0 at rows that are not valid.
    """
    target = q_targets(next_q_halt.detach(), next_q_continue.detach(), False, step_cost)
    bce = F.binary_cross_entropy_with_logits(q_continue, target, reduction="none")
    return torch.where(valid, bce, 0.0)


class LossParts(NamedTuple):
    """Loss terms and metrics of one segment; scalars unless ``reduction="none"`` gives (B,).

    Only ``total``, ``lm``, ``q_halt`` and ``q_continue`` carry gradient.
    """

    total: torch.Tensor
    lm: torch.Tensor
    q_halt: torch.Tensor
    q_continue: torch.Tensor
    seq_correct: torch.Tensor
    """(B,) bool: every supervised cell of the sample is predicted right (always per sample)."""
    cell_accuracy: torch.Tensor
    """Fraction of supervised cells predicted right (per sample, then reduced)."""
    exact_accuracy: torch.Tensor
    """Fraction (or count, for ``sum``) of fully correct samples."""
    q_halt_accuracy: torch.Tensor
    """Fraction of samples where ``q_halt >= 0`` agrees with ``seq_correct``."""


def hrm_loss(
    outputs: Outputs,
    labels: torch.Tensor,
    q_continue_target: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    loss: str = "stablemax",
    reduction: str = "mean",
    lm_weight: torch.Tensor | None = None,
) -> LossParts:
    """The loss of one segment of deep supervision.

    Args:
        outputs: the model's :class:`~hrm_agent.model.Outputs` for this segment.
        labels: (B, S) target tokens.
        q_continue_target: (B,) target from :func:`q_targets`; None leaves q_continue out
            (its term is then 0), as when no next segment was computed.
        mask: (B, S) bool, True at supervised cells; None supervises every cell.
        loss: cell loss, ``stablemax`` or ``softmax``.
        reduction: over samples: ``mean``, ``sum`` (e.g. to divide by a global batch size
            under DDP) or ``none`` for (B,) terms.
        lm_weight: (B,) weight of each sample's cell loss (:func:`segment_weights`); None: 1.

    Returns:
        :class:`LossParts` with ``total = lm + 0.5 * (q_halt + q_continue)``.
    """
    if loss not in CELL_LOSSES:
        raise ValueError(f"loss must be one of {sorted(CELL_LOSSES)}, got {loss!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    logits = outputs.logits
    if logits.dim() != 3:
        raise ValueError(f"logits must be (B, S, V), got {tuple(logits.shape)}")
    B = logits.shape[0]
    if q_continue_target is not None and q_continue_target.shape != (B,):
        raise ValueError(f"q_continue_target must be ({B},), got {tuple(q_continue_target.shape)}")

    cell_loss = CELL_LOSSES[loss](logits, labels, mask)  # (B, S), validates shapes
    supervised = torch.ones_like(labels, dtype=torch.bool) if mask is None else mask.bool()
    counts = supervised.sum(-1)  # (B,)
    divisor = counts.clamp_min(1).float()  # samples without supervised cells add 0

    lm = cell_loss.sum(-1) / divisor  # (B,)
    if lm_weight is not None:
        if lm_weight.shape != (B,):
            raise ValueError(f"lm_weight must be ({B},), got {tuple(lm_weight.shape)}")
        lm = lm * lm_weight.to(lm.device, lm.dtype)
    with torch.no_grad():
        right = supervised & (logits.argmax(-1) == labels)  # (B, S)
        seq_correct = right.sum(-1) == counts  # (B,)
        cell_acc = right.sum(-1).float() / divisor
        exact = seq_correct.float()
        q_acc = ((outputs.q_halt >= 0) == seq_correct).float()

    q_halt = F.binary_cross_entropy_with_logits(
        outputs.q_halt.float(), seq_correct.float(), reduction="none"
    )
    if q_continue_target is None:
        q_continue = torch.zeros_like(q_halt)
    else:
        q_continue = F.binary_cross_entropy_with_logits(
            outputs.q_continue.float(), q_continue_target.detach().float(), reduction="none"
        )

    def reduce(t: torch.Tensor) -> torch.Tensor:
        if reduction == "mean":
            return t.mean()
        if reduction == "sum":
            return t.sum()
        return t

    lm_r, qh_r, qc_r = reduce(lm), reduce(q_halt), reduce(q_continue)
    return LossParts(
        total=lm_r + 0.5 * (qh_r + qc_r),
        lm=lm_r,
        q_halt=qh_r,
        q_continue=qc_r,
        seq_correct=seq_correct,
        cell_accuracy=reduce(cell_acc),
        exact_accuracy=reduce(exact),
        q_halt_accuracy=reduce(q_acc),
    )
