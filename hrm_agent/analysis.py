"""Look inside the reasoning: hierarchical convergence, state trajectories, dimensionality.

``hrm analyze sudoku|maze --out DIR`` traces a checkpoint on test puzzles one low-level update
at a time and writes four figures (PNG) plus the numbers behind them (``analysis.json``,
``residuals.csv``):

1. ``residuals.png`` — forward residuals of z_H and z_L at every step of the episode, averaged
   over puzzles, log scale (the paper's hierarchical-convergence figure, section 4);
2. ``pca.png`` — 2-D PCA trajectories of the pooled z_H and z_L for a few puzzles;
3. ``participation_ratio.png`` — effective dimensionality (participation ratio) of the final
   z_H and z_L over many puzzles, beside a randomly initialised model with ``--random-baseline``;
4. ``answers.png`` — the answer after every high-level cycle for one puzzle, each board drawn by
   the pygame viewer's own painter (``hrm_env.render.sudoku`` / ``hrm_env.render.maze``).

Definitions (also written into ``analysis.json``):

* **step**: one low-level update. Cycle c (1-based) holds steps (c-1)*T+1 .. c*T; its
  high-level update follows step c*T, so the z_H residual of cycle c is plotted at step c*T.
* **forward residual** of a state sequence z_0, z_1, ...: the *relative* L2 norm
  ``||z_t - z_{t-1}|| / ||z_{t-1}||`` over the whole (L, D) state of one puzzle (absolute
  norms are stored too). The blocks are post-norm, so every position has unit RMS and the
  relative residual is the RMS change per element, comparable between z_H and z_L.
* **pooled state**: a state averaged over the S cell positions (the Q-head prefix left out),
  the same (D,) vector the environments expose as ``latent``.
* **participation ratio** ``PR = (sum λ)^2 / sum λ^2`` of the covariance eigenvalues λ. The
  headline numbers use the pooled *final* states, one vector per puzzle (as the paper, which
  used final states over many puzzles); with n puzzles PR is at most n - 1. The per-cell
  variant (every cell's final vector a sample, n*S samples) is reported beside it.

The quantities are pure functions (:func:`forward_residuals`, :func:`participation_ratio`,
:func:`pca_2d`) and the tracer is :func:`cycle_traces`: one high-level cycle with its
residuals and Q values, which the pygame side panel can also call live (see
:func:`panel_values`).

Shapes: B batch, N traced puzzles, S cells, L = 1 + S positions, D hidden, V vocabulary,
C high-level cycles, T low-level steps per cycle.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from hrm_agent.cli import seed_type
from hrm_agent.distribution import require
from hrm_agent.model import HRM, Carry, Outputs
from hrm_agent.reasoner import TorchReasoner
from hrm_env.fileio import atomic_open, atomic_path, check_writable, save_figure

__all__ = [
    "CycleTrace",
    "EpisodeTrace",
    "TracingReasoner",
    "add_arguments",
    "cycle_traces",
    "forward_residuals",
    "panel_values",
    "participation_ratio",
    "pca_2d",
    "run",
    "trace_episodes",
]

FIGURES = ("residuals.png", "pca.png", "participation_ratio.png", "answers.png")
"""The figures ``hrm analyze`` writes into ``--out``."""


# ---------------------------------------------------------------------------- pure quantities
def forward_residuals(states: Any, relative: bool = True) -> np.ndarray:
    """Forward residuals of a sequence of states.

    Args:
        states: (T + 1, ...) array: the initial state then one state per update; everything
            after the first axis is one state and is flattened.
        relative: divide each norm by the norm of the state before the update.

    Returns:
        (T,) float64: ``||z_t - z_{t-1}||_2`` (over the flattened state), or that divided by
        ``||z_{t-1}||_2`` when ``relative``.

    Raises:
        ValueError: for fewer than two states, non-finite values, or (relative) a zero state.
    """
    z = np.asarray(states, dtype=np.float64)
    if z.ndim < 1 or z.shape[0] < 2:
        raise ValueError(f"states must hold at least 2 states along axis 0, got shape {z.shape}")
    z = z.reshape(z.shape[0], -1)  # (T+1, F)
    if not np.isfinite(z).all():
        raise ValueError("states contain non-finite values")
    res = np.linalg.norm(np.diff(z, axis=0), axis=1)  # (T,)
    if relative:
        before = np.linalg.norm(z[:-1], axis=1)
        if (before == 0).any():
            raise ValueError("a relative residual is undefined after an all-zero state")
        res = res / before
    return res


def _covariance_eigenvalues(x: np.ndarray) -> np.ndarray:
    """Eigenvalues of the sample covariance of (n, d) data, descending (via SVD)."""
    centred = x - x.mean(axis=0, keepdims=True)
    s = np.linalg.svd(centred, compute_uv=False)
    return s**2 / max(x.shape[0] - 1, 1)


def participation_ratio(data: Any) -> float:
    """Participation ratio ``(sum λ)^2 / sum λ^2``: how many dimensions the variance fills.

    Args:
        data: either a 1-D spectrum (covariance eigenvalues, >= 0) or 2-D (n, d) samples, whose
            sample covariance's eigenvalues are used. PR lies in [1, rank]: 1 for variance
            along a single direction, d for isotropic d-dimensional data.

    Raises:
        ValueError: for other shapes, non-finite or negative eigenvalues, fewer than two
            samples, or data without any variance.
    """
    a = np.asarray(data, dtype=np.float64)
    if a.ndim == 1:
        eig = a
        if (eig < 0).any():
            raise ValueError("eigenvalues of a covariance must be >= 0")
    elif a.ndim == 2:
        if a.shape[0] < 2:
            raise ValueError(f"need at least 2 samples for a covariance, got {a.shape[0]}")
        eig = _covariance_eigenvalues(a)
    else:
        raise ValueError(
            f"data must be a 1-D spectrum or (n, d) samples, got {a.ndim}-D shape {a.shape}"
        )
    if not np.isfinite(eig).all():
        raise ValueError("data contain non-finite values")
    total = eig.sum()
    if total <= 0:
        raise ValueError("the data have no variance: the participation ratio is undefined")
    # Normalise first so the squares cannot overflow for large spectra.
    p = eig / total
    return float(1.0 / np.square(p).sum())


def pca_2d(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Project (n, d) data on its first two principal components (numpy SVD).

    Args:
        x: (n, d) samples, d >= 1. With d == 1 the second coordinate is zero.

    Returns:
        ``(projected (n, 2), explained (2,))``: the centred data in the PC1/PC2 basis and the
        fraction of the total variance along each. Signs are fixed so each component's
        largest-magnitude loading is positive (the same data always give the same picture).

    Raises:
        ValueError: for a non-2-D array, fewer than two samples, non-finite values, or data
            without any variance.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 1:
        raise ValueError(f"x must be (n, d) with n >= 2 and d >= 1, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("x contains non-finite values")
    centred = a - a.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    total = np.square(s).sum()
    if total <= 0:
        raise ValueError("the data have no variance: PCA is undefined")
    k = min(2, vt.shape[0])
    comps = vt[:k]  # (k, d)
    # Deterministic orientation: SVD signs are arbitrary.
    flip = np.sign(comps[np.arange(k), np.abs(comps).argmax(axis=1)])
    comps = comps * flip[:, None]
    projected = np.zeros((a.shape[0], 2))
    projected[:, :k] = centred @ comps.T
    explained = np.zeros(2)
    explained[:k] = np.square(s[:k]) / total
    return projected, explained


# ---------------------------------------------------------------------------- tracing
class CycleTrace(NamedTuple):
    """What one traced high-level cycle shows, per puzzle (numpy, float32).

    Residuals are relative (``||z_t - z_{t-1}|| / ||z_{t-1}||`` over the (L, D) state);
    the ``abs_*`` fields hold the plain norms.
    """

    res_H: np.ndarray
    """(B,) relative residual of the cycle's single z_H update."""
    res_L: np.ndarray
    """(B, T) relative residual of z_L after each low-level step."""
    abs_H: np.ndarray
    """(B,) absolute residual of the z_H update."""
    abs_L: np.ndarray
    """(B, T) absolute residuals of z_L."""
    q_halt: np.ndarray
    """(B,) Q-head halt logit read out after the cycle."""
    q_continue: np.ndarray
    """(B,) Q-head continue logit read out after the cycle."""
    logits: np.ndarray
    """(B, S, V) answer logits read out after the cycle."""
    pooled_H: np.ndarray
    """(B, D) z_H after the cycle, mean over the cells."""
    pooled_L: np.ndarray
    """(B, T, D) z_L after each low-level step, mean over the cells."""


def _residual(new: torch.Tensor, old: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(absolute, relative) L2 residual per row of (B, L, D) states."""
    diff = (new.float() - old.float()).flatten(1).norm(dim=1)  # (B,)
    base = old.float().flatten(1).norm(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
    return diff, diff / base


def cycle_traces(
    model: HRM,
    carry: Carry,
    x: torch.Tensor,
    l_steps: int | None = None,
    tokens: torch.Tensor | None = None,
) -> tuple[Carry, CycleTrace]:
    """Run one high-level cycle step by step and record what each update did.

    The updates are the model's own (``update_L`` T times, then ``update_H``, as
    :meth:`HRM.cycle`), under ``torch.inference_mode`` and the model's autocast, so with the
    default ``l_steps`` the returned carry equals ``model.cycle(carry, x)``.

    Args:
        model: the network.
        carry: the state before the cycle, (B, L, D) each.
        x: (B, L, D) embedded puzzles (``model.embed(tokens)``).
        l_steps: low-level steps in this cycle (default ``config.l_cycles``, as trained); more
            shows whether z_L keeps converging towards a fixed point within a cycle.
        tokens: (B, S) the puzzles, needed only by a model with an output mask or max
            aggregation.

    Returns:
        The carry after the cycle and its :class:`CycleTrace`.

    Raises:
        ValueError: for ``l_steps < 1``.
    """
    carry, trace, _ = _trace_cycle(model, carry, x, l_steps, tokens)
    return carry, trace


def _trace_cycle(
    model: HRM,
    carry: Carry,
    x: torch.Tensor,
    l_steps: int | None,
    tokens: torch.Tensor | None = None,
) -> tuple[Carry, CycleTrace, Outputs]:
    """:func:`cycle_traces`, also returning the readout it made (the model's Outputs)."""
    T = model.config.l_cycles if l_steps is None else int(l_steps)
    if T < 1:
        raise ValueError(f"l_steps must be >= 1, got {l_steps}")
    abs_L, rel_L, pooled_L = [], [], []
    with torch.inference_mode(), model.autocast():
        for _ in range(T):
            before = carry.z_L
            carry = model.update_L(carry, x, tokens)
            a, r = _residual(carry.z_L, before)
            abs_L.append(a)
            rel_L.append(r)
            pooled_L.append(carry.z_L[:, 1:].float().mean(dim=1))  # (B, D), cells only
        before = carry.z_H
        carry = model.update_H(carry, tokens)
        abs_H, rel_H = _residual(carry.z_H, before)
        out = model.readout(carry, tokens)
        pooled_H = carry.z_H[:, 1:].float().mean(dim=1)  # (B, D)

    def np32(t: torch.Tensor) -> np.ndarray:
        return t.float().cpu().numpy().astype(np.float32, copy=False)

    trace = CycleTrace(
        res_H=np32(rel_H),
        res_L=np32(torch.stack(rel_L, dim=1)),
        abs_H=np32(abs_H),
        abs_L=np32(torch.stack(abs_L, dim=1)),
        q_halt=np32(out.q_halt),
        q_continue=np32(out.q_continue),
        logits=np32(out.logits),
        pooled_H=np32(pooled_H),
        pooled_L=np32(torch.stack(pooled_L, dim=1)),
    )
    return carry, trace, out


def panel_values(trace: CycleTrace, row: int = 0, floor: float = 1e-4) -> dict[str, float]:
    """One cycle's residuals as values in [0, 1] for the viewer's trace plot.

    The viewer's plots take series in [0, 1]; residuals span decades, so they are mapped on a
    log scale: ``floor`` -> 0 and 1 (a change as large as the state) -> 1.

    Args:
        trace: from :func:`cycle_traces`.
        row: which puzzle of the batch.
        floor: the residual drawn at 0 (smaller ones are clipped), in (0, 1).

    Returns:
        ``{"res z_H": ..., "res z_L": ...}`` (z_L: its last step in the cycle), ready to
        append to ``Snapshot.traces``.
    """
    if not 0.0 < floor < 1.0:
        raise ValueError(f"floor must lie in (0, 1), got {floor}")
    span = -math.log10(floor)

    def unit(value: float) -> float:
        v = max(float(value), floor)
        return min(max((math.log10(v) + span) / span, 0.0), 1.0)

    return {"res z_H": unit(trace.res_H[row]), "res z_L": unit(trace.res_L[row, -1])}


class TracingReasoner(TorchReasoner):
    """A :class:`~hrm_agent.reasoner.TorchReasoner` that also traces every cycle it runs.

    It computes the same states as its base (the cycle goes through :func:`cycle_traces`, which
    applies the model's own updates) and keeps the last :class:`CycleTrace`, so a viewer can
    show the residuals of z_H and z_L live beside the Q values (``hrm watch``, key ``t``).
    """

    last_trace: CycleTrace | None = None

    @classmethod
    def wrap(cls, reasoner: TorchReasoner) -> TracingReasoner:
        """The same model, task and device as ``reasoner``, now traced."""
        return cls(reasoner.model, reasoner.task)

    def _advance(
        self, carry: Carry, x: torch.Tensor, tokens: torch.Tensor | None
    ) -> tuple[Carry, Outputs]:
        carry, self.last_trace, out = _trace_cycle(self.model, carry, x, None, tokens)
        return carry, out

    def panel_values(self, row: int = 0) -> dict[str, float]:
        """The last cycle's residuals for the viewer's trace plot (empty before any cycle)."""
        return {} if self.last_trace is None else panel_values(self.last_trace, row)


@dataclass(frozen=True)
class EpisodeTrace:
    """Whole traced episodes of N puzzles (numpy; residuals relative unless ``abs_``).

    Attributes:
        res_H: (N, C) relative residual of z_H per cycle.
        res_L: (N, C, T) relative residual of z_L per low-level step.
        abs_H: (N, C) absolute residual of z_H.
        abs_L: (N, C, T) absolute residual of z_L.
        q_halt: (N, C) halt logit after each cycle.
        q_continue: (N, C) continue logit after each cycle.
        predictions: (N, C, S) uint8 argmax answer after each cycle.
        confidence: (N, C, S) float32 max softmax probability after each cycle.
        pooled_H: (N, C + 1, D) z_H pooled over cells; index 0 is the initial state.
        pooled_L: (N, C * T + 1, D) z_L pooled over cells after every step; index 0 initial.
        cov_cells_H: (D, D) covariance of the final z_H over all cells of all puzzles.
        cov_cells_L: (D, D) the same for z_L.
    """

    res_H: np.ndarray
    res_L: np.ndarray
    abs_H: np.ndarray
    abs_L: np.ndarray
    q_halt: np.ndarray
    q_continue: np.ndarray
    predictions: np.ndarray
    confidence: np.ndarray
    pooled_H: np.ndarray
    pooled_L: np.ndarray
    cov_cells_H: np.ndarray
    cov_cells_L: np.ndarray

    @property
    def n_cycles(self) -> int:
        """C, high-level cycles traced."""
        return int(self.res_H.shape[1])

    @property
    def l_steps(self) -> int:
        """T, low-level steps per cycle."""
        return int(self.res_L.shape[2])


class _Covariance:
    """Streaming covariance of row vectors (float64 sums), for the per-cell PR."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.total = np.zeros(dim)
        self.outer = np.zeros((dim, dim))

    def add(self, rows: np.ndarray) -> None:
        rows = rows.astype(np.float64, copy=False)
        self.n += rows.shape[0]
        self.total += rows.sum(axis=0)
        self.outer += rows.T @ rows

    def matrix(self) -> np.ndarray:
        mean = self.total / max(self.n, 1)
        return (self.outer - self.n * np.outer(mean, mean)) / max(self.n - 1, 1)


def _read_answer(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(argmax uint8, max softmax probability) per cell, as the environments read answers."""
    from hrm_env.envs.reasoning import read_answer

    return read_answer(logits)


def trace_episodes(
    model: HRM,
    inputs: np.ndarray,
    cycles: int | None = None,
    l_steps: int | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> EpisodeTrace:
    """Trace whole episodes from the initial carry, one low-level step at a time.

    Args:
        model: the network (put in eval mode for the run, restored afterwards).
        inputs: (N, S) integer puzzles.
        cycles: high-level cycles C per episode (default ``h_cycles * max_segments``, the
            model's full ACT budget).
        l_steps: low-level steps T per cycle (default ``config.l_cycles``).
        batch_size: puzzles per model call.
        progress: show a tqdm bar over batches.

    Returns:
        The :class:`EpisodeTrace`.

    Raises:
        ValueError: for puzzles that do not fit the model, or non-positive counts.
    """
    config = model.config
    inputs = np.asarray(inputs)
    if inputs.ndim != 2 or inputs.shape[1] != config.seq_len or inputs.shape[0] < 1:
        raise ValueError(
            f"inputs must have shape (N >= 1, {config.seq_len}) for this model, got {inputs.shape}"
        )
    C = config.max_cycles if cycles is None else int(cycles)
    T = config.l_cycles if l_steps is None else int(l_steps)
    if C < 1 or T < 1 or batch_size < 1:
        raise ValueError(f"cycles, l_steps and batch_size must be >= 1, got {C}, {T}, {batch_size}")
    N, D = inputs.shape[0], config.hidden_size
    res_H, abs_H, q_halt, q_cont = (np.zeros((N, C), np.float32) for _ in range(4))
    res_L, abs_L = (np.zeros((N, C, T), np.float32) for _ in range(2))
    predictions = np.zeros((N, C, config.seq_len), np.uint8)
    confidence = np.zeros((N, C, config.seq_len), np.float32)
    pooled_H = np.zeros((N, C + 1, D), np.float32)
    pooled_L = np.zeros((N, C * T + 1, D), np.float32)
    cov_H, cov_L = _Covariance(D), _Covariance(D)

    starts: Any = range(0, N, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="trace", unit="batch", leave=False)
    was_training = model.training
    model.eval()
    try:
        for lo in starts:
            hi = min(lo + batch_size, N)
            tokens = torch.from_numpy(inputs[lo:hi].astype(np.int64)).to(model.device)
            with torch.inference_mode():
                x = model.embed(tokens)
                carry = model.initial_carry(hi - lo)
            pooled_H[lo:hi, 0] = carry.z_H[:, 1:].float().mean(dim=1).cpu().numpy()
            pooled_L[lo:hi, 0] = carry.z_L[:, 1:].float().mean(dim=1).cpu().numpy()
            for c in range(C):
                carry, tr = cycle_traces(model, carry, x, T, tokens)
                res_H[lo:hi, c], abs_H[lo:hi, c] = tr.res_H, tr.abs_H
                res_L[lo:hi, c], abs_L[lo:hi, c] = tr.res_L, tr.abs_L
                q_halt[lo:hi, c], q_cont[lo:hi, c] = tr.q_halt, tr.q_continue
                predictions[lo:hi, c], confidence[lo:hi, c] = _read_answer(tr.logits)
                pooled_H[lo:hi, c + 1] = tr.pooled_H
                pooled_L[lo:hi, 1 + c * T : 1 + (c + 1) * T] = tr.pooled_L
            # Per-cell samples of the final states (the prefix position left out).
            cov_H.add(carry.z_H[:, 1:].float().reshape(-1, D).cpu().numpy())
            cov_L.add(carry.z_L[:, 1:].float().reshape(-1, D).cpu().numpy())
    finally:
        model.train(was_training)
    return EpisodeTrace(
        res_H=res_H,
        res_L=res_L,
        abs_H=abs_H,
        abs_L=abs_L,
        q_halt=q_halt,
        q_continue=q_cont,
        predictions=predictions,
        confidence=confidence,
        pooled_H=pooled_H,
        pooled_L=pooled_L,
        cov_cells_H=cov_H.matrix(),
        cov_cells_L=cov_L.matrix(),
    )


def dimensionality(trace: EpisodeTrace) -> dict[str, float]:
    """Participation ratios of the final states: pooled per puzzle (headline) and per cell."""
    return {
        "pr_H": participation_ratio(trace.pooled_H[:, -1]),
        "pr_L": participation_ratio(trace.pooled_L[:, -1]),
        "pr_cells_H": participation_ratio(np.linalg.eigvalsh(trace.cov_cells_H).clip(min=0)),
        "pr_cells_L": participation_ratio(np.linalg.eigvalsh(trace.cov_cells_L).clip(min=0)),
    }


# ---------------------------------------------------------------------------- figures
def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure on the Agg canvas (no pyplot: no global backend or state)."""
    Figure = require("matplotlib.figure", "viz", "hrm analyze's figures").Figure
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


H_COLOUR, L_COLOUR = "#0072B2", "#E69F00"  # Okabe-Ito blue / orange, as the viewer's palette


def plot_residuals(
    trace: EpisodeTrace,
    path: Path,
    title: str,
    baseline: EpisodeTrace | None = None,
    h_cycles: int | None = None,
) -> None:
    """Figure 1: mean forward residuals of z_H and z_L per step, log scale."""
    C, T = trace.n_cycles, trace.l_steps
    steps_L = np.arange(1, C * T + 1)
    steps_H = np.arange(1, C + 1) * T
    fig = _figure(9, 4.2)
    ax = fig.add_subplot()

    def band(values: np.ndarray, steps: np.ndarray, colour: str, label: str, **kw: Any) -> None:
        mean = values.mean(axis=0)
        ax.plot(steps, mean, color=colour, label=label, **kw)
        if values.shape[0] > 1 and kw.get("linestyle") is None:
            lo, hi = np.percentile(values, [10, 90], axis=0)
            ax.fill_between(steps, lo, hi, color=colour, alpha=0.15, linewidth=0)

    if baseline is not None:
        band(
            baseline.res_L.reshape(baseline.res_L.shape[0], -1),
            steps_L,
            L_COLOUR,
            "z_L, random init",
            linestyle="--",
            alpha=0.6,
            linewidth=1,
        )
        band(
            baseline.res_H,
            steps_H,
            H_COLOUR,
            "z_H, random init",
            linestyle="--",
            alpha=0.6,
            linewidth=1,
        )
    band(
        trace.res_L.reshape(trace.res_L.shape[0], -1),
        steps_L,
        L_COLOUR,
        "z_L",
        linewidth=1.5,
        marker=".",
        markersize=4,
    )
    band(trace.res_H, steps_H, H_COLOUR, "z_H", linewidth=2, marker="o", markersize=4)
    for c in range(1, C):
        segment_end = h_cycles is not None and c % h_cycles == 0
        ax.axvline(c * T + 0.5, color="0.75" if segment_end else "0.9", linewidth=0.8, zorder=0)
    ax.set_yscale("log")
    ax.set_xlim(0.5, C * T + 0.5)
    ax.set_xlabel(f"low-level step ({T} per high-level cycle; z_H updates after each cycle's last)")
    ax.set_ylabel("forward residual  ||z_t - z_{t-1}|| / ||z_{t-1}||")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8, ncol=2)
    save_figure(fig, path)


def plot_pca(trace: EpisodeTrace, path: Path, title: str, rows: list[int]) -> dict[str, list]:
    """Figure 2: PC1/PC2 trajectories of pooled z_H and z_L for ``rows``; returns explained.

    The PCA is fit on every state after the first update, of all traced puzzles: the fixed
    initial state is one shared random vector far from where the recurrence goes, and fitting
    on it would spend PC1 on that single jump.
    """
    fig = _figure(10, 4.6)
    axes = fig.subplots(1, 2)
    explained_all: dict[str, list] = {}
    for ax, name, states in (
        (axes[0], "z_H", trace.pooled_H[:, 1:]),
        (axes[1], "z_L", trace.pooled_L[:, 1:]),
    ):
        N, K, D = states.shape
        projected, explained = pca_2d(states.reshape(N * K, D))  # fit on all puzzles, steps
        projected = projected.reshape(N, K, 2)
        explained_all[name] = explained.tolist()
        for i, r in enumerate(rows):
            colour = f"C{i % 10}"
            p = projected[r]
            ax.plot(
                p[:, 0],
                p[:, 1],
                color=colour,
                linewidth=1,
                alpha=0.8,
                marker="." if name == "z_H" else None,
                markersize=3,
                label=f"puzzle {r}",
            )
            ax.scatter(p[0, 0], p[0, 1], color=colour, marker="o", s=25, zorder=3)
            ax.scatter(
                p[-1, 0],
                p[-1, 1],
                color=colour,
                marker="*",
                s=90,
                zorder=3,
                edgecolor="k",
                linewidth=0.5,
            )
        ax.set_xlabel(f"PC1 ({100 * explained[0]:.0f}% of variance)")
        ax.set_ylabel(f"PC2 ({100 * explained[1]:.0f}%)")
        unit = "cycles" if name == "z_H" else "low-level steps"
        ax.set_title(f"{name}: {K} {unit}")
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle(title + "  (dot: after the first update, star: final state)")
    save_figure(fig, path)
    return explained_all


def plot_participation(dims: dict[str, dict[str, float]], path: Path, title: str) -> None:
    """Figure 3: participation ratio of z_H and z_L, per model (trained, random init)."""
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    models = list(dims)
    width = 0.38
    xs = np.arange(len(models))
    for j, (key, name, colour) in enumerate((("pr_H", "z_H", H_COLOUR), ("pr_L", "z_L", L_COLOUR))):
        values = [dims[m][key] for m in models]
        bars = ax.bar(xs + (j - 0.5) * width, values, width, color=colour, label=name)
        ax.bar_label(bars, fmt="%.1f", fontsize=9)
    ax.set_xticks(xs, models)
    ax.set_ylabel("participation ratio of final states")
    ax.set_title(title)
    ax.legend()
    ax.margins(y=0.15)
    save_figure(fig, path)


def answers_strip(
    task_name: str,
    grid_shape: tuple[int, int],
    puzzle: np.ndarray,
    solution: np.ndarray,
    predictions: np.ndarray,
    confidence: np.ndarray,
    correct: np.ndarray,
    board: int = 150,
    columns: int = 8,
    title: str = "",
) -> np.ndarray:
    """Figure 4: one small board per cycle, drawn off-screen by the viewer's painter.

    Args:
        task_name: picks the painter (``maze`` or a Sudoku task), as the viewer does.
        grid_shape: (rows, cols) of the board.
        puzzle: (S,) puzzle tokens.
        solution: (S,) reference answer (wrong cells are marked, as in the viewer).
        predictions: (C, S) answer after each cycle.
        confidence: (C, S) confidence after each cycle.
        correct: (C,) bool, whether each cycle's answer is correct.
        board: board side in pixels.
        columns: boards per row.
        title: a line of text above the boards.

    Returns:
        (H, W, 3) uint8 image.
    """
    from hrm_env.render import maze as maze_painter
    from hrm_env.render import sudoku as sudoku_painter
    from hrm_env.render.viewer import (
        Fonts,
        Palette,
        Snapshot,
        ViewerOptions,
        frame_of,
        import_pygame,
    )

    pygame = import_pygame()
    painter = maze_painter if task_name == "maze" else sudoku_painter
    C = predictions.shape[0]
    # The viewer's sizes are set for a 540 px board; scale them to the small one.
    options = ViewerOptions(scale=max(board / 540, 0.25))
    # The painters size their text in units of the viewer's scale, as the viewer's own Fonts.
    fonts = Fonts(pygame, options.scale)
    label_fonts = Fonts(pygame, 1.0)
    label_h, gap, head = 22, 10, 34 if title else 6
    rows = math.ceil(C / columns)
    cols = min(C, columns)
    width = cols * board + (cols + 1) * gap
    height = head + rows * (board + label_h + gap) + gap
    canvas = pygame.Surface((width, height))
    canvas.fill(Palette.background)
    if title:
        canvas.blit(label_fonts.get(22, bold=True).render(title, True, Palette.ink), (gap, 8))
    label_font = label_fonts.get(18)
    for c in range(C):
        r, k = divmod(c, columns)
        left = gap + k * (board + gap)
        top = head + r * (board + label_h + gap) + label_h
        snap = Snapshot(
            task=task_name,
            grid_shape=grid_shape,
            puzzle=puzzle,
            prediction=predictions[c],
            confidence=confidence[c],
            previous=None if c == 0 else predictions[c - 1],
            solution=solution,
            cycle=c + 1,
            max_cycles=C,
            solved=bool(correct[c]),
        )
        painter.draw_board(
            pygame, canvas, pygame.Rect(left, top, board, board), snap, options, fonts
        )
        ok = bool(correct[c])
        text = f"cycle {c + 1}" + ("  solved" if ok else "")
        label = label_font.render(text, True, Palette.good if ok else Palette.muted)
        canvas.blit(label, (left, top - label_h + 3))
    return frame_of(pygame, canvas)


# ---------------------------------------------------------------------------- the command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hrm analyze``."""
    parser.add_argument("task", help="sudoku, sudoku-mini or maze")
    parser.add_argument("--out", required=True, help="folder for the figures and numbers")
    parser.add_argument("--checkpoint", default=None, help="checkpoint stem (default: shipped)")
    parser.add_argument(
        "--random-baseline",
        action="store_true",
        help="also trace a randomly initialised model of the same config (PR bars, dashed "
        "residuals)",
    )
    parser.add_argument("--n", type=int, default=128, help="test puzzles traced (default 128)")
    parser.add_argument(
        "--cycles",
        type=int,
        default=None,
        help="high-level cycles per episode (default h_cycles * max_segments)",
    )
    parser.add_argument(
        "--l-steps",
        type=int,
        default=None,
        help="low-level steps per cycle (default the trained l_cycles; more shows whether z_L "
        "converges within a cycle)",
    )
    parser.add_argument(
        "--seed", type=seed_type, default=0, help="picks puzzles; seeds the baseline"
    )
    parser.add_argument("--pca-puzzles", type=int, default=4, help="trajectories drawn (4)")
    parser.add_argument(
        "--puzzle",
        type=int,
        default=None,
        help="which traced puzzle the answer strip shows (default: the solved one that took "
        "the most cycles)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="puzzles per model call")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")


def _choose_strip_puzzle(correct: np.ndarray, predictions: np.ndarray) -> int:
    """The solved puzzle that took the most cycles; with none solved, the most revised one."""
    solved = correct.any(axis=1)
    if solved.any():
        first = np.where(solved, correct.argmax(axis=1), -1)
        return int(first.argmax())
    changes = (predictions[:, 1:] != predictions[:, :-1]).sum(axis=(1, 2))
    return int(changes.argmax())


def _write_csv(path: Path, trace: EpisodeTrace, baseline: EpisodeTrace | None) -> None:
    C, T = trace.n_cycles, trace.l_steps
    mean_L = trace.res_L.mean(axis=0).reshape(-1)
    abs_L = trace.abs_L.mean(axis=0).reshape(-1)
    mean_H, abs_H = trace.res_H.mean(axis=0), trace.abs_H.mean(axis=0)
    header = ["step", "cycle", "l_step", "res_L", "res_H", "abs_L", "abs_H"]
    if baseline is not None:
        header += ["random_res_L", "random_res_H"]
        base_L = baseline.res_L.mean(axis=0).reshape(-1)
        base_H = baseline.res_H.mean(axis=0)
    with atomic_open(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for k in range(C * T):
            c, t = divmod(k, T)
            last = t == T - 1  # the H update follows a cycle's last L step
            row: list[Any] = [
                k + 1,
                c + 1,
                t + 1,
                f"{mean_L[k]:.6g}",
                f"{mean_H[c]:.6g}" if last else "",
                f"{abs_L[k]:.6g}",
                f"{abs_H[c]:.6g}" if last else "",
            ]
            if baseline is not None:
                row += [f"{base_L[k]:.6g}", f"{base_H[c]:.6g}" if last else ""]
            w.writerow(row)


def _save_png(path: Path, image: np.ndarray) -> None:
    imsave = require("matplotlib.image", "viz", "hrm analyze's figures").imsave
    with atomic_path(path) as tmp:
        imsave(tmp, image, format=path.suffix[1:] or "png")


def run(args: argparse.Namespace) -> int:
    """``hrm analyze``: trace, then write the figures, ``analysis.json`` and ``residuals.csv``."""
    from hrm_agent.reasoner import load_pretrained
    from hrm_env.puzzles.tasks import get_task

    # Boards are drawn on off-screen surfaces; never let pygame look for a display.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    for name in ("n", "pca_puzzles", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.n < 2:
        raise ValueError(f"--n must be >= 2 (PCA and PR need two puzzles), got {args.n}")
    task = get_task(args.task)
    n = min(args.n, len(task.test_set()))
    if args.puzzle is not None and not 0 <= args.puzzle < n:
        raise ValueError(
            f"--puzzle must lie in [0, {n}) (an index among the traced puzzles), got {args.puzzle}"
        )
    # Before the model is loaded and traced: an unwritable --out is reported at once.
    check_writable(args.out, folder=True)
    reasoner = load_pretrained(args.task, device=args.device, checkpoint=args.checkpoint)
    model, config = reasoner.model, reasoner.model.config
    cycles = config.max_cycles if args.cycles is None else args.cycles
    l_steps = config.l_cycles if args.l_steps is None else args.l_steps

    test = task.test_set()
    rng = np.random.default_rng(args.seed)
    chosen = np.sort(rng.choice(len(test), size=n, replace=False))
    batch = test[chosen]

    out = Path(args.out)
    trace = trace_episodes(model, batch.inputs, cycles, l_steps, args.batch_size, progress=True)
    baseline = None
    if args.random_baseline:
        generator = torch.Generator().manual_seed(args.seed)
        random_model = HRM(config, generator=generator).to(model.device)
        baseline = trace_episodes(
            random_model, batch.inputs, cycles, l_steps, args.batch_size, progress=True
        )

    correct = np.stack(
        [
            task.is_correct(batch.inputs, trace.predictions[:, c], batch.targets)
            for c in range(cycles)
        ],
        axis=1,
    )  # (N, C)
    cell_acc = np.stack(
        [
            task.cell_accuracy(batch.inputs, trace.predictions[:, c], batch.targets)
            for c in range(cycles)
        ],
        axis=1,
    )  # (N, C)

    if args.checkpoint:
        stem = Path(args.checkpoint)
        name = f"{stem.parent.name}/{stem.name}" if stem.parent.name else stem.name
    else:
        name = f"shipped {args.task}"
    label = f"{args.task} ({name}), {n} test puzzles"
    plot_residuals(
        trace, out / "residuals.png", f"Forward residuals: {label}", baseline, config.h_cycles
    )
    rows = list(range(min(args.pca_puzzles, n)))
    explained = plot_pca(trace, out / "pca.png", f"PCA of pooled states: {label}", rows)
    dims = {"trained": dimensionality(trace)}
    if baseline is not None:
        dims["random init"] = dimensionality(baseline)
    plot_participation(dims, out / "participation_ratio.png", f"Participation ratio: {label}")

    strip = _choose_strip_puzzle(correct, trace.predictions) if args.puzzle is None else args.puzzle
    image = answers_strip(
        task.name,
        task.grid_shape,
        batch.inputs[strip],
        batch.targets[strip],
        trace.predictions[strip],
        trace.confidence[strip],
        correct[strip],
        board=170,
        title=f"{args.task}: test puzzle {int(chosen[strip])} (rating {int(batch.ratings[strip])})"
        f", answer after each high-level cycle",
    )
    _save_png(out / "answers.png", image)
    _write_csv(out / "residuals.csv", trace, baseline)

    def per_step(a: np.ndarray) -> list[float]:
        return [float(v) for v in a.mean(axis=0).reshape(-1)]

    summary: dict[str, Any] = {
        "task": args.task,
        "checkpoint": str(args.checkpoint) if args.checkpoint else "shipped",
        "n": n,
        "test_indices": [int(i) for i in chosen],
        "cycles": cycles,
        "l_steps": l_steps,
        "h_cycles_per_segment": config.h_cycles,
        "residual": "relative L2 ||z_t - z_{t-1}|| / ||z_{t-1}|| over the (1+S, D) state, mean "
        "over puzzles; res_H[c] is the H update after cycle c's last L step",
        "pr": "participation ratio (sum l)^2 / sum l^2 of covariance eigenvalues; pr_H/pr_L over "
        "final states pooled over cells (one sample per puzzle, so at most n - 1), "
        "pr_cells_* over every cell's final state",
        "res_H": per_step(trace.res_H),
        "res_L": per_step(trace.res_L),
        "abs_H": per_step(trace.abs_H),
        "abs_L": per_step(trace.abs_L),
        "q_halt": per_step(trace.q_halt),
        "q_continue": per_step(trace.q_continue),
        "exact_accuracy": [float(v) for v in correct.mean(axis=0)],
        "cell_accuracy": [float(v) for v in cell_acc.mean(axis=0)],
        "participation_ratio": dims,
        "pca_explained": explained,
        "strip_puzzle": {"traced_index": strip, "test_index": int(chosen[strip])},
        "figures": list(FIGURES),
    }
    if baseline is not None:
        summary["random_init"] = {
            "res_H": per_step(baseline.res_H),
            "res_L": per_step(baseline.res_L),
        }
    with atomic_open(out / "analysis.json") as f:
        json.dump(summary, f, indent=1)

    d = dims["trained"]
    print(
        f"hrm analyze {args.task}: wrote {', '.join(FIGURES)}, analysis.json, residuals.csv "
        f"to {out}"
    )
    print(
        f"  PR(z_H) = {d['pr_H']:.1f}, PR(z_L) = {d['pr_L']:.1f} (pooled final states, "
        f"n={n}); per cell {d['pr_cells_H']:.1f} / {d['pr_cells_L']:.1f}"
    )
    if baseline is not None:
        b = dims["random init"]
        print(f"  random init: PR(z_H) = {b['pr_H']:.1f}, PR(z_L) = {b['pr_L']:.1f}")
    print(
        f"  exact accuracy after cycle 1 / {cycles}: {correct[:, 0].mean():.3f} / "
        f"{correct[:, -1].mean():.3f}"
    )
    return 0
