"""Several reasoning trajectories per puzzle in one batch, and the rules that pick one answer.

The HRM is deterministic, and the shipped Sudoku model is equivariant to relabelling digits and
to the grid's symmetries, so augmented copies of a puzzle run the same computation. Diversity
therefore comes from noise the evaluation loop adds around the model (the loop owns the carry
and the injected input; the model itself is untouched):

* ``carry_sigma``: Gaussian noise of that standard deviation added to ``z_H`` and ``z_L`` before
  every cycle but the first (the carry is RMS-normed, so its entries are about 1 in size);
* ``init_sigma``: the same on the fixed initial state ``z_H0`` / ``z_L0`` (a random start);
* ``input_dropout``: each entry of the injected input ``x`` is zeroed with this probability,
  afresh every cycle, and the rest scaled by ``1 / (1 - p)`` (inverted dropout);
* ``views``: trajectory k sees the puzzle under the task's k-th symmetry (``Task.views``; a
  maze's 8 rotations and reflections, k taken mod 8), and its answers are mapped back to the
  puzzle's own frame before anything reads them. A model that is not equivariant (the maze
  model's convolution kernels are not symmetric) computes something different in each view,
  so its errors differ while its right answers agree. The Sudoku model is equivariant and
  its task offers no views.
* ``guess_cycle``: branching on the model's own doubt. After that many cycles, every
  trajectory but the first writes one guessed digit into a blank cell of its input, as if it
  were a given, and goes on from the carry it has. The guesses come from trajectory 0's
  answer at that cycle: the blank cells whose second most likely digit is most likely (the
  cells the model is least sure of between two digits), each with its two most likely
  digits, so trajectories 1 and 2 try the two digits of the most doubtful cell, 3 and 4 of
  the next, and so on. One of a pair is right whenever the answer is among the cell's two
  best, and a right given can unlock what propagation alone does not. Tasks with blank cells
  only (Sudoku).
* ``guess_depth`` (with ``guess_cycle``): a tree of guesses instead of one. At levels
  ``0 .. depth - 1``, after cycles ``guess_cycle + level * guess_every``, the guessing
  trajectories split in two halves: the first half writes the most likely digit of its
  group's most doubtful cell, the second half the second most likely, and each half is a
  group of its own at the next level. A group's doubt is read from its first trajectory
  (trajectory 0 at level 0), which holds the group's guesses so far, so every level guesses
  in the light of the ones before it. At the last level a group spreads over its most
  doubtful cells in pairs, as a single guess does; depth 1 is the single guess above.
  Where one right given rarely suffices, a path of several right givens does (K = 16: 15
  guessing trajectories, a tree of depth 4 ends in 15 leaves).

A puzzle's K trajectories are K consecutive rows of one batch (``B * K`` rows, puzzle-major).
Trajectory 0 of every puzzle always runs without noise, so ``samples=1`` is exactly the
plain model and every rule below can only add to what one trajectory finds. Each trajectory
halts by its own Q head (the first segment end where ``q_halt > q_continue``, else at the
limit), and one answer per puzzle is picked by a rule:

* the model's own: ``q`` (the trajectory whose ``q_halt`` at its halt is highest, most sure it
  is right), ``first`` (the first to halt; ties: highest ``q_halt``), ``vote`` (the answer most
  trajectories give; ties: highest ``q_halt``);
* ``checker``, labelled as such: of the trajectories whose answers pass the task's rule
  checker, the one with the lowest ``Task.answer_cost`` (then the highest ``q_halt``), else
  the ``q`` choice. Sudoku: a complete grid that keeps the givens and breaks no row, column
  or box rule. Maze: one simple path of marks from S to G, and of those the fewest marks (a
  shortest path passes, and no path has fewer). Either checks the answers and never searches
  the puzzle, and either is pass@K (a right answer is picked whenever one of the K is right):
  an upper bound on what a better selector of these trajectories could reach.

Shapes: B puzzles, K samples (trajectories per puzzle), S cells, L = 1 + S positions, D hidden.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hrm_agent.model import Carry
from hrm_env.puzzles.tasks import trajectory_views

__all__ = [
    "Diversity",
    "TrajectoryNoise",
    "HaltTracker",
    "Trajectories",
    "MODEL_RULES",
    "RULES",
    "run_trajectories",
    "RowViews",
    "make_views",
    "select",
    "rule_accuracy",
    "votes",
    "add_diversity_arguments",
    "diversity_from_args",
]

#: The model's own selection rules (no knowledge of the puzzle's rules).
MODEL_RULES = ("q", "first", "vote")
#: Every rule reported; ``checker`` uses the task's rule checker (pass@K, an upper bound).
RULES = (*MODEL_RULES, "checker")


@dataclass(frozen=True)
class Diversity:
    """Where the differences between a puzzle's trajectories come from (all off by default)."""

    carry_sigma: float = 0.0
    """Std of Gaussian noise added to z_H and z_L before every cycle but the first."""
    init_sigma: float = 0.0
    """Std of Gaussian noise added to the initial state z_H0 / z_L0."""
    input_dropout: float = 0.0
    """Probability of zeroing an entry of the injected input, afresh every cycle."""
    guess_cycle: int = 0
    """Cycles after which each noisy trajectory fixes one guessed digit (0: never)."""
    guess_depth: int = 1
    """Levels of the tree of guesses (1: one guess per trajectory); needs ``guess_cycle``."""
    guess_every: int = 4
    """Cycles between two levels of the tree of guesses."""
    views: bool = False
    """Trajectory k sees the puzzle under the task's k-th symmetry (``Task.views``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.views, (bool, np.bool_)):
            raise ValueError(f"views must be True or False, got {self.views!r}")
        if self.views and self.guess_cycle:
            raise ValueError(
                "views and guesses (guess_cycle) do not combine: a guess is read from one "
                "trajectory's cells and written into another's, which a view would move"
            )
        for name, low in (("guess_cycle", 0), ("guess_depth", 1), ("guess_every", 1)):
            g = getattr(self, name)
            if isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {g!r}")
        if self.guess_depth > 1 and not self.guess_cycle:
            raise ValueError(
                f"guess_depth {self.guess_depth} needs guess_cycle > 0 (the cycle of the "
                "first guess); guess_cycle 0 turns guessing off"
            )
        for name in ("carry_sigma", "init_sigma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        p = self.input_dropout
        if not (isinstance(p, (int, float)) and 0.0 <= p < 1.0):
            raise ValueError(f"input_dropout must lie in [0, 1), got {p!r}")

    @property
    def noisy(self) -> bool:
        """Whether a source that changes the computation around the model is on (noise or
        guesses; views change only what the model is shown)."""
        return bool(self.carry_sigma or self.init_sigma or self.input_dropout or self.guess_cycle)

    @property
    def active(self) -> bool:
        """Whether any source is on (else every trajectory is the same)."""
        return self.noisy or bool(self.views)

    def label(self) -> str:
        """A short name such as ``carry 0.1`` or ``none``."""
        parts = [
            f"{name} {value:g}"
            for name, value in (
                ("carry", self.carry_sigma),
                ("init", self.init_sigma),
                ("dropout", self.input_dropout),
            )
            if value
        ]
        if self.guess_cycle:
            parts.append(f"guess at cycle {self.guess_cycle}")
        if self.guess_depth > 1:
            parts[-1] += f" (tree of depth {self.guess_depth}, every {self.guess_every})"
        if self.views:
            parts.insert(0, "views")
        return " + ".join(parts) or "none"

    def guess_level(self, cycle: int) -> int | None:
        """The level of the tree of guesses taken after ``cycle`` cycles, else None."""
        if not self.guess_cycle or cycle < self.guess_cycle:
            return None
        level, rest = divmod(cycle - self.guess_cycle, self.guess_every)
        return level if rest == 0 and level < self.guess_depth else None


#: The source ``samples > 1`` uses when none is given: the best of those compared by
#: ``scripts/sample_frontier.py sources`` (64 ``extreme-mix`` puzzles, K = 8, the shipped 9x9
#: model; docs/RESULTS.md): carry noise 0.3 lifted the model's own pick from 53.1% to 67.2%,
#: ahead of carry 0.15 / 0.5 / 1, a random start (0.3, 1) and input dropout (0.15, 0.3).
DEFAULT_DIVERSITY = Diversity(carry_sigma=0.3)


class TrajectoryNoise:
    """Seeded noise for a batch whose ``noisy`` rows get it (the others run the plain model).

    Args:
        diversity: the sources and their sizes.
        noisy: (R,) bool, the rows that get noise.
        generator: the only source of randomness (on the rows' device).
        samples: K, when the rows are puzzle-major groups of K with the clean trajectory
            first (:meth:`for_samples`); needed by guesses only.
        blank: the task's blank input token; needed by guesses only.
    """

    def __init__(
        self,
        diversity: Diversity,
        noisy: torch.Tensor,
        generator: torch.Generator,
        samples: int | None = None,
        blank: int | None = None,
    ) -> None:
        if diversity.guess_cycle and (samples is None or blank is None):
            raise ValueError(
                "guesses (guess_cycle) need the puzzle-major trajectory groups and a task "
                "with blank cells (Sudoku); this run has "
                + ("no blank token" if blank is None else "no groups")
            )
        self.diversity = diversity
        self.noisy = noisy.view(-1, 1, 1)  # (R, 1, 1) bool
        self.generator = generator
        self.samples = samples
        self.blank = blank

    @classmethod
    def for_samples(
        cls,
        diversity: Diversity,
        batch: int,
        samples: int,
        seed: int,
        device: torch.device,
        blank: int | None = None,
    ) -> TrajectoryNoise:
        """Noise for ``batch`` puzzles times ``samples`` rows each, trajectory 0 of each clean
        (``blank``: the task's blank input token, needed by guesses only)."""
        generator = torch.Generator(device=device).manual_seed(int(seed))
        noisy = (torch.arange(batch * samples, device=device) % samples) != 0
        return cls(diversity, noisy, generator, samples, blank)

    def _gauss(self, like: torch.Tensor, sigma: float) -> torch.Tensor:
        noise = torch.randn(like.shape, generator=self.generator, device=like.device)
        return torch.where(self.noisy, like + sigma * noise, like)

    def initial(self, carry: Carry) -> Carry:
        """The initial carry, moved by ``init_sigma`` in the noisy rows."""
        sigma = self.diversity.init_sigma
        if not sigma:
            return carry
        return Carry(self._gauss(carry.z_H, sigma), self._gauss(carry.z_L, sigma))

    def perturb(self, carry: Carry) -> Carry:
        """The carry entering a cycle after the first, moved by ``carry_sigma``."""
        sigma = self.diversity.carry_sigma
        if not sigma:
            return carry
        return Carry(self._gauss(carry.z_H, sigma), self._gauss(carry.z_L, sigma))

    def inject(self, x: torch.Tensor) -> torch.Tensor:
        """The injected input of one cycle, with inverted dropout in the noisy rows."""
        p = self.diversity.input_dropout
        if not p:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= p
        dropped = torch.where(keep, x / (1.0 - p), torch.zeros_like(x))
        return torch.where(self.noisy, dropped, x)

    def guess_level(self, cycle: int) -> int | None:
        """The level of the tree of guesses the trajectories take once ``cycle`` cycles have
        run, else None (see :meth:`Diversity.guess_level`)."""
        return self.diversity.guess_level(cycle)

    def guess(self, tokens: torch.Tensor, logits: torch.Tensor, level: int = 0) -> torch.Tensor:
        """The (R, S) input tokens with one more guessed digit in every noisy row (see
        :func:`doubtful_guesses`); ``logits`` (R, S, V) are the readout of the cycle just run."""
        assert self.samples is not None and self.blank is not None  # checked in __init__
        depth = self.diversity.guess_depth
        return doubtful_guesses(tokens, logits, self.samples, self.blank, level, depth)


class RowViews:
    """Which symmetry of its puzzle each row of a batch sees, and the way back.

    Rows are puzzle-major groups of K trajectories; trajectory k of every puzzle sees view
    ``k mod V`` of the task's V views (``hrm_env.puzzles.tasks.trajectory_views``), so
    trajectory 0 is the plain model's.

    Args:
        index: (V, S) gather indices: view v of a flat grid ``g`` is ``g[index[v]]``.
        batch: B, puzzles in the batch.
        samples: K, trajectories per puzzle.
        device: where the rows are.
    """

    def __init__(self, index: np.ndarray, batch: int, samples: int, device: torch.device) -> None:
        forward, backward = trajectory_views(index, samples)  # (K, S) each
        self.forward = torch.from_numpy(np.tile(forward, (batch, 1))).to(device)  # (R, S)
        self.backward = torch.from_numpy(np.tile(backward, (batch, 1))).to(device)

    def show(self, cells: torch.Tensor) -> torch.Tensor:
        """(R, S) grids in their own frame -> each row in its view."""
        return cells.gather(1, self.forward)

    def back(self, cells: torch.Tensor) -> torch.Tensor:
        """(R, S) grids in each row's view -> the puzzle's own frame."""
        return cells.gather(1, self.backward)


def make_views(
    diversity: Diversity | None,
    views: np.ndarray | None,
    batch: int,
    samples: int,
    device: torch.device,
) -> RowViews | None:
    """The rows' views when ``diversity`` asks for them (None otherwise).

    Raises:
        ValueError: views asked of a task that offers none (``views`` None).
    """
    if diversity is None or not diversity.views:
        return None
    if views is None:
        raise ValueError(
            "views need a task with symmetries to show the model (maze); this one offers none"
        )
    return None if samples == 1 else RowViews(views, batch, samples, device)


def guess_plan(samples: int, depth: int) -> np.ndarray:
    """Who guesses what at each level of a tree of guesses over one puzzle's K trajectories.

    Trajectories ``1 .. K - 1`` start as one group. At a level before the last, a group's
    first ``ceil(n / 2)`` trajectories take digit 0 (the most likely) of the group's most
    doubtful cell and the rest digit 1 (the second), and the two halves go on as groups. At
    the last level, the i-th trajectory of a group takes digit ``i % 2`` of the group's
    ``i // 2``-th most doubtful cell. A group reads its doubt from its first trajectory
    (trajectory 0, the clean one, at level 0).

    Returns:
        (depth, K, 3) int64: for each level and trajectory, the trajectory whose answer
        ranks the cells, the cell's rank (0 = most doubtful) and the digit's rank; -1 in
        every column for trajectory 0, which never guesses.
    """
    plan = np.full((depth, samples, 3), -1, dtype=np.int64)
    groups = [(1, samples)] if samples > 1 else []
    for level in range(depth):
        halves = []
        for lo, hi in groups:
            reader = 0 if level == 0 else lo
            if level < depth - 1:
                mid = lo + (hi - lo + 1) // 2
                for k in range(lo, hi):
                    plan[level, k] = (reader, 0, int(k >= mid))
                halves += [(lo, mid), (mid, hi)] if mid < hi else [(lo, mid)]
            else:
                for k in range(lo, hi):
                    plan[level, k] = (reader, (k - lo) // 2, (k - lo) % 2)
        groups = halves
    return plan


def doubtful_guesses(
    tokens: torch.Tensor,
    logits: torch.Tensor,
    samples: int,
    blank: int,
    level: int = 0,
    depth: int = 1,
) -> torch.Tensor:
    """Give every trajectory k >= 1 of each puzzle one more guessed digit, from the doubt of
    its group (:func:`guess_plan`).

    A trajectory's answer probabilities rank its blank cells by the probability of their
    second most likely token (the cells it doubts most between two tokens). With ``depth``
    1, trajectories 2j + 1 and 2j + 2 write the two most likely tokens of trajectory 0's j-th
    most doubtful cell into their input; deeper trees split in halves first. A cell rank
    beyond the blank cells left leaves the trajectory as it is.

    Args:
        tokens: (B * K, S) input tokens, puzzle-major, trajectory 0 of each puzzle first.
        logits: (B * K, S, V) answer logits of the same rows.
        samples: K, trajectories per puzzle.
        blank: the input token of a blank cell (never guessed as an answer).
        level: the level of the tree this guess is (0 .. depth - 1).
        depth: the tree's levels.

    Returns:
        New (B * K, S) tokens; trajectory 0 of every puzzle unchanged.
    """
    R, S = tokens.shape
    K = samples
    if K == 1:
        return tokens
    B = R // K
    plan = torch.from_numpy(guess_plan(K, depth)[level, 1:]).to(tokens.device)  # (K - 1, 3)
    reader, rank, choice = plan.unbind(-1)
    grouped = tokens.view(B, K, S)
    probs = torch.softmax(logits.view(B, K, S, -1)[:, reader].float(), dim=-1)  # (B, K-1, S, V)
    probs[..., blank] = -1.0  # a guess is never the blank
    top = probs.topk(2, dim=-1)  # (B, K - 1, S, 2)
    read = grouped[:, reader]  # (B, K - 1, S): the reader's tokens, its guesses included
    doubt = top.values[..., 1].masked_fill(read != blank, -2.0)  # givens are never guessed
    ranks = min(int(rank.max()) + 1, S)
    doubt_best, cells = doubt.topk(ranks, dim=-1)  # (B, K - 1, ranks), most doubtful first
    at = rank.clamp(max=ranks - 1).view(1, -1, 1).expand(B, -1, 1)
    cell = cells.gather(2, at).squeeze(-1)  # (B, K - 1)
    usable = (doubt_best.gather(2, at).squeeze(-1) > -2.0) & (rank < S)  # a blank to guess
    digits = top.indices.gather(2, cell.view(B, -1, 1, 1).expand(-1, -1, 1, 2)).squeeze(2)
    digit = digits.gather(2, choice.view(1, -1, 1).expand(B, -1, 1)).squeeze(-1)  # (B, K - 1)
    out = grouped.clone()
    guessing = out[:, 1:]  # (B, K - 1, S) view
    current = guessing.gather(2, cell.unsqueeze(-1)).squeeze(-1)
    written = torch.where(usable, digit.to(tokens.dtype), current)
    guessing.scatter_(2, cell.unsqueeze(-1), written.unsqueeze(-1))
    return out.view(R, S)


class HaltTracker:
    """Each row's answer, cycle and ``q_halt`` where it halts by its own Q head.

    Fed every cycle's readout in order: a row halts at the first segment end where
    ``q_halt > q_continue`` (with ``use_q``; without, never early), and every row still
    running halts at the last cycle.
    """

    def __init__(self, rows: int, cells: int, n_cycles: int, use_q: bool = True) -> None:
        self.n_cycles = n_cycles
        self.use_q = use_q
        self.halted = np.zeros(rows, dtype=bool)
        self.answers = np.zeros((rows, cells), dtype=np.uint8)
        self.cycles = np.zeros(rows, dtype=np.int64)
        self.q_halt = np.zeros(rows, dtype=np.float32)

    @property
    def done(self) -> bool:
        """Whether every row has halted."""
        return bool(self.halted.all())

    def update(self, readout: Any, predictions: np.ndarray) -> None:
        """Record the rows halting at this readout (``predictions``: its (R, S) uint8 answers)."""
        if not readout.segment_end:
            return
        if readout.cycle >= self.n_cycles:
            wants = np.ones_like(self.halted)
        elif not self.use_q:
            return
        else:
            wants = (readout.q_halt > readout.q_continue).cpu().numpy()
        new = wants & ~self.halted
        if new.any():
            self.answers[new] = predictions[new]
            self.cycles[new] = readout.cycle
            self.q_halt[new] = readout.q_halt.float().cpu().numpy()[new]
            self.halted |= new


@dataclass(frozen=True, eq=False)
class Trajectories:
    """K trajectories per puzzle, each at its own Q-head halt."""

    answers: np.ndarray
    """(B, K, S) uint8 answers."""
    q_halt: np.ndarray
    """(B, K) float32 halt logit where each trajectory halted."""
    cycles: np.ndarray
    """(B, K) int64 cycle at which each trajectory halted."""

    @classmethod
    def from_tracker(cls, tracker: HaltTracker, samples: int) -> Trajectories:
        """Regroup a tracker over B * K puzzle-major rows into (B, K, ...)."""
        R, S = tracker.answers.shape
        B = R // samples
        return cls(
            tracker.answers.reshape(B, samples, S),
            tracker.q_halt.reshape(B, samples),
            tracker.cycles.reshape(B, samples),
        )

    @staticmethod
    def concat(parts: list[Trajectories]) -> Trajectories:
        """Stack the trajectories of several batches of puzzles."""
        return Trajectories(
            np.concatenate([p.answers for p in parts]),
            np.concatenate([p.q_halt for p in parts]),
            np.concatenate([p.cycles for p in parts]),
        )


def repeat_rows(tokens: torch.Tensor, samples: int) -> torch.Tensor:
    """(B, S) -> (B * K, S), each puzzle's K copies consecutive."""
    return tokens if samples == 1 else tokens.repeat_interleave(samples, dim=0)


def run_trajectories(
    model: Any,
    tokens: torch.Tensor,
    samples: int = 1,
    diversity: Diversity | None = None,
    seed: int = 0,
    max_segments: int | None = None,
    use_q: bool = True,
    blank: int | None = None,
    views: np.ndarray | None = None,
) -> Trajectories:
    """Run ``samples`` trajectories of every puzzle of ``tokens`` (B, S) as one batch.

    Each halts by its Q head (``use_q``) or runs to the limit; the run stops as soon as every
    trajectory has halted. ``blank``: the task's blank input token (``Task.blank_token``),
    needed by guesses only; ``views``: the task's views (``Task.views``), needed by
    ``diversity.views`` only. Answers are in each puzzle's own frame.
    """
    from hrm_agent.evaluate import iterate_cycles

    samples = check_samples(samples)
    segments = model.config.max_segments if max_segments is None else int(max_segments)
    rows = repeat_rows(tokens, samples)
    noise = make_noise(diversity, tokens.shape[0], samples, seed, rows.device, blank)
    shown = make_views(diversity, views, tokens.shape[0], samples, rows.device)
    if shown is not None:
        rows = shown.show(rows)
    n_cycles = segments * model.config.h_cycles
    tracker = HaltTracker(rows.shape[0], rows.shape[1], n_cycles, use_q)
    for r in iterate_cycles(model, rows, segments, noise=noise):
        predictions = r.predictions if shown is None else shown.back(r.predictions)
        tracker.update(r, predictions.to(torch.uint8).cpu().numpy())
        if tracker.done:
            break
    return Trajectories.from_tracker(tracker, samples)


def check_samples(samples: Any) -> int:
    """``samples`` as an int >= 1, else a ``ValueError`` naming it."""
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    return int(samples)


def make_noise(
    diversity: Diversity | None,
    batch: int,
    samples: int,
    seed: int,
    device: torch.device,
    blank: int | None = None,
) -> TrajectoryNoise | None:
    """The noise of ``samples`` trajectories per puzzle (None for one, or with no source on).

    ``blank``: the task's blank input token; guesses on a task without one raise ValueError.
    """
    diversity = DEFAULT_DIVERSITY if diversity is None else diversity
    if diversity.guess_cycle and blank is None:
        raise ValueError(
            "guesses (guess_cycle) need a task with blank cells (Sudoku); this one has none"
        )
    if samples == 1 or not diversity.noisy:
        return None
    return TrajectoryNoise.for_samples(diversity, batch, samples, seed, device, blank)


def select(
    trajectories: Trajectories,
    rule: str,
    valid: np.ndarray | None = None,
    cost: np.ndarray | None = None,
) -> np.ndarray:
    """(B,) the index of the chosen trajectory of each puzzle under ``rule``.

    Args:
        trajectories: the K trajectories per puzzle.
        rule: one of ``RULES``.
        valid: (B, K) bool, each answer passes the rule checker (needed by ``checker`` only).
        cost: (B, K) the task's cost of each answer (``Task.answer_cost``; a maze's marked
            cells): ``checker`` takes the cheapest answer that passes (default: all equal).
    """
    q, cycles = trajectories.q_halt, trajectories.cycles
    by_q = np.argmax(q, axis=1)
    if rule == "q":
        return by_q
    if rule == "first":
        # Sort keys, last the primary: earliest halt, then the highest q_halt.
        return np.lexsort((-q, cycles), axis=-1)[:, 0]
    if rule == "vote":
        return np.lexsort((-q, -votes(trajectories)), axis=-1)[:, 0]
    if rule == "checker":
        if valid is None:
            raise ValueError("the checker rule needs the rule checker's verdicts (valid)")
        cost = np.zeros(q.shape) if cost is None else np.asarray(cost, dtype=np.float64)
        # Among the answers that pass, the cheapest, then the highest q_halt.
        best = np.lexsort((-q, np.where(valid, cost, np.inf)), axis=-1)[:, 0]
        return np.where(valid.any(axis=1), best, by_q)
    raise ValueError(f"unknown selection rule {rule!r}; choose one of {', '.join(RULES)}")


def votes(trajectories: Trajectories) -> np.ndarray:
    """(B, K) how many of its puzzle's K answers equal each trajectory's (itself included)."""
    answers = trajectories.answers
    return (answers[:, :, None, :] == answers[:, None, :, :]).all(axis=-1).sum(axis=2)


def chosen(trajectories: Trajectories, index: np.ndarray) -> np.ndarray:
    """(B, S) the answers at ``index`` (B,)."""
    return trajectories.answers[np.arange(len(index)), index]


def rule_accuracy(
    task: Any, inputs: np.ndarray, targets: np.ndarray, trajectories: Trajectories
) -> dict[str, dict[str, float] | None]:
    """Exact accuracy of every rule (``checker`` is None for a task without a rule checker).

    Each entry also holds ``mean_cycles``, the cycles every trajectory of a puzzle ran in
    total (each to its own halt), averaged over puzzles: what the K answers cost.
    """
    B, K, S = trajectories.answers.shape
    flat = trajectories.answers.reshape(B * K, S)
    valid = cost = None
    if hasattr(task, "check_rules"):
        repeated = np.repeat(inputs, K, axis=0)
        valid = np.asarray(task.check_rules(repeated, flat)).reshape(B, K)
        if hasattr(task, "answer_cost"):
            cost = np.asarray(task.answer_cost(repeated, flat)).reshape(B, K)
    spent = float(trajectories.cycles.sum(axis=1).mean()) if B else 0.0
    report: dict[str, dict[str, float] | None] = {}
    for rule in RULES:
        if rule == "checker" and valid is None:
            report[rule] = None
            continue
        answers = chosen(trajectories, select(trajectories, rule, valid, cost))
        ok = np.asarray(task.is_correct(inputs, answers, targets), dtype=bool)
        report[rule] = {"exact_accuracy": float(ok.mean()) if B else 0.0, "mean_cycles": spent}
    return report


# ---------------------------------------------------------------------- command line
def add_diversity_arguments(parser: argparse.ArgumentParser, guesses: bool = True) -> None:
    """``--samples``, ``--seed`` and the diversity flags (shared by ``hrm eval`` and ``watch``;
    ``--guess-cycle`` only with ``guesses``: the envs behind ``watch`` do not guess)."""
    parser.add_argument(
        "--samples",
        type=int,
        default=1,
        help="trajectories per puzzle, run as one batch (default 1: the plain model)",
    )
    parser.add_argument(
        "--carry-noise",
        type=float,
        default=None,
        help="std of Gaussian noise on z_H/z_L before every cycle but the first "
        f"(default with --samples > 1 and no source given: {DEFAULT_DIVERSITY.label()})",
    )
    parser.add_argument(
        "--init-noise", type=float, default=None, help="std of Gaussian noise on z_H0/z_L0"
    )
    parser.add_argument(
        "--input-dropout",
        type=float,
        default=None,
        help="dropout probability on the injected input, afresh every cycle",
    )
    parser.add_argument(
        "--views",
        action="store_true",
        default=None,
        help="trajectory k sees the puzzle under the task's k-th symmetry (maze: its 8 "
        "rotations and reflections), its answers mapped back; alone, no noise is added",
    )
    if guesses:
        parser.add_argument(
            "--guess-cycle",
            type=int,
            default=None,
            help="after this many cycles every trajectory but the first writes one guessed "
            "digit into its input: the two likeliest digits of the blank cells the model "
            "doubts most (Sudoku)",
        )
        parser.add_argument(
            "--guess-depth",
            type=int,
            default=None,
            help="with --guess-cycle: a tree of this many guesses per trajectory, each level "
            "splitting its trajectories between the two likeliest digits of their most "
            "doubtful cell (default 1: one guess)",
        )
        parser.add_argument(
            "--guess-every",
            type=int,
            default=None,
            help=f"cycles between two levels of the tree of guesses (default "
            f"{Diversity.guess_every})",
        )


def diversity_from_args(args: argparse.Namespace) -> Diversity:
    """The ``Diversity`` the flags ask for (``DEFAULT_DIVERSITY`` when none is given)."""
    check_samples(args.samples)
    given = {
        "carry_sigma": args.carry_noise,
        "init_sigma": args.init_noise,
        "input_dropout": args.input_dropout,
    }
    others = {
        name: getattr(args, name, None)
        for name in ("guess_cycle", "guess_depth", "guess_every", "views")
    }
    others = {k: v for k, v in others.items() if v is not None}
    if all(v is None for v in given.values()) and not others:
        return DEFAULT_DIVERSITY
    floats = {k: float(v) for k, v in given.items() if v is not None}
    return Diversity(**floats, **others)
