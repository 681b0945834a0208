"""Halting policies for the HRM environments, and their evaluation on held-out puzzles.

A *halting policy* decides, after every high-level cycle, whether the model should think one
more cycle (action 0) or commit its current answer (action 1). It sees the batched env's
observation (see ``hrm_env.envs.reasoning.ReasoningEnv``) and answers for every row at once:

>>> from hrm_agent.policies import FixedCyclesPolicy, evaluate_policy
>>> from hrm_env.envs.reasoner import ScriptedReasoner
>>> from hrm_env.puzzles.tasks import get_task
>>> puzzles = get_task("sudoku-mini").test_set()[:8]
>>> result = evaluate_policy(FixedCyclesPolicy(3), "sudoku-mini", puzzles,
...                          reasoner=ScriptedReasoner("sudoku-mini", solve_at=2))
>>> result.exact_accuracy, result.mean_cycles, round(result.mean_return, 2)
(1.0, 3.0, 0.98)

The baselines every experiment compares against:

* :class:`QHeadPolicy`: the model's own Q head, halt when ``q_halt > q_continue``;
* :class:`FixedCyclesPolicy`: always think exactly ``k`` cycles;
* :class:`ConfidencePolicy`: halt once the mean confidence of the answer exceeds a threshold;
* :class:`StablePolicy`: halt once the answer has not changed for ``m`` cycles;
* :class:`SB3Policy`: any trained stable-baselines3 model.

:func:`evaluate_policy` runs a policy over a fixed puzzle set on the batched env, each puzzle
exactly once, and reports exact accuracy, mean cycles and mean return. Because the model's
trajectory on a puzzle does not depend on when it is stopped, :class:`RecordedReasoner` can
record every cycle of a model once and replay it to the env for any number of policies (what
``hrm frontier`` does): the env, its rewards and its observations stay the real ones, only the
network's forward passes are replayed.

Shapes: B batch (sub-environments), S cells, V vocabulary, D latent width, F feature width,
P recorded puzzles, C cycles.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hrm_env.envs.reasoner import CycleOutput, Reasoner
from hrm_env.envs.reasoning import CONTINUE, HALT, read_answer
from hrm_env.envs.vector import ReasoningVectorEnv
from hrm_env.fileio import atomic_open
from hrm_env.puzzles.tasks import PuzzleBatch, Task, get_task

__all__ = [
    "HaltingPolicy",
    "QHeadPolicy",
    "FixedCyclesPolicy",
    "ConfidencePolicy",
    "StablePolicy",
    "SB3Policy",
    "PolicyResult",
    "evaluate_policy",
    "RecordedReasoner",
    "RecordedState",
    "answer_logits",
    "write_puzzle_csv",
    "CONTINUE",
    "HALT",
]

Observation = dict[str, np.ndarray]
EnvFactory = Callable[[int], ReasoningVectorEnv]


# ---------------------------------------------------------------------------------------------
# The protocol and the baselines
# ---------------------------------------------------------------------------------------------


@runtime_checkable
class HaltingPolicy(Protocol):
    """Decides per row whether the model halts now: 0 continue, 1 halt.

    Attributes:
        name: a short label for tables and plots (``"fixed-4"``, ``"q-head"``, ...).
    """

    name: str

    def reset(self, n_envs: int) -> None:
        """Forget any per-row memory; called before a batch of ``n_envs`` rows starts."""
        ...

    def act(self, obs: Observation) -> np.ndarray:
        """(B,) int64 actions for a batched observation (a dict of (B, ...) arrays)."""
        ...


def _cycles(obs: Observation) -> np.ndarray:
    return np.asarray(obs["cycle"]).reshape(len(obs["cycle"]), -1)[:, 0].astype(np.int64)


class QHeadPolicy:
    """The model's own halting rule: halt when its Q head says ``q_halt > q_continue``.

    This is how the HRM halts at inference (ACT), here applied after every cycle (the env's
    step) rather than only at segment ends.
    """

    def __init__(self, name: str = "q-head") -> None:
        self.name = name

    def reset(self, n_envs: int) -> None:
        """Stateless: nothing to forget."""

    def act(self, obs: Observation) -> np.ndarray:
        q = np.asarray(obs["q"])  # (B, 2): halt, continue
        return (q[:, 0] > q[:, 1]).astype(np.int64)


class FixedCyclesPolicy:
    """Think exactly ``k`` cycles, then halt (the env halts at ``max_cycles`` if ``k`` is larger).

    Args:
        k: cycles to run, >= 1.
    """

    def __init__(self, k: int, name: str | None = None) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        self.k = int(k)
        self.name = name or f"fixed-{self.k}"

    def reset(self, n_envs: int) -> None:
        """Stateless: the cycle count is in the observation."""

    def act(self, obs: Observation) -> np.ndarray:
        return (_cycles(obs) >= self.k).astype(np.int64)


CELL_CHOICES = ("scored", "all")


class ConfidencePolicy:
    """Halt at the first cycle whose mean answer confidence exceeds ``threshold``.

    The confidence of a cell is the max softmax probability of its answer (the env's
    ``confidence`` observation). The mean is taken by default over the task's **scored** cells
    (``Task.cell_mask``: the blanks of a Sudoku, the non-wall cells of a maze), not all cells:
    givens and walls are copied from the input and the model is near-certain about them from
    the first cycle, so including them only adds a constant that squeezes every threshold into
    a narrow band near 1 (a 9x9 Sudoku with 25 givens has 31% of its cells given) while the
    cells that decide correctness are the ones the puzzle leaves open. ``cells="all"`` averages
    over every cell instead. A puzzle without scored cells counts as fully confident.

    Args:
        threshold: halt when the mean confidence is strictly greater than this, in [0, 1].
        task: the task (or its name), which says which cells are scored.
        cells: ``"scored"`` (default) or ``"all"``.
    """

    def __init__(
        self,
        threshold: float,
        task: Task | str,
        cells: str = "scored",
        name: str | None = None,
    ) -> None:
        if not (isinstance(threshold, (int, float, np.floating)) and 0.0 <= threshold <= 1.0):
            raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
        if cells not in CELL_CHOICES:
            raise ValueError(f"cells must be one of {CELL_CHOICES}, got {cells!r}")
        self.threshold = float(threshold)
        self.task = get_task(task) if isinstance(task, str) else task
        self.cells = cells
        suffix = "" if cells == "scored" else "-all"
        self.name = name or f"confidence-{self.threshold:g}{suffix}"

    def reset(self, n_envs: int) -> None:
        """Stateless: confidence is in the observation."""

    def mean_confidence(self, obs: Observation) -> np.ndarray:
        """(B,) mean confidence over the chosen cells."""
        confidence = np.asarray(obs["confidence"], dtype=np.float64)  # (B, S)
        if self.cells == "all":
            return confidence.mean(axis=1)
        mask = self.task.cell_mask(np.asarray(obs["puzzle"]))  # (B, S) bool
        counts = mask.sum(axis=1)
        sums = np.where(mask, confidence, 0.0).sum(axis=1)
        return np.where(counts > 0, sums / np.maximum(counts, 1), 1.0)

    def act(self, obs: Observation) -> np.ndarray:
        return (self.mean_confidence(obs) > self.threshold).astype(np.int64)


class StablePolicy:
    """Halt once the answer has not changed for ``m`` consecutive cycles.

    ``m = 1`` halts at the first cycle whose answer equals the previous cycle's. Each row keeps
    the answer it saw last and a count of unchanged cycles. A row's memory is cleared when its
    observation shows ``cycle == 1``, which is exactly the first observation of every episode
    (``reset`` runs the first cycle), so it works under both autoreset conventions: the
    batched env's next-step autoreset, where a finished row shows its final observation once
    more (same cycle: the memory is left as it is) before its new puzzle, and
    stable-baselines3's same-step autoreset.

    Args:
        m: unchanged cycles required, >= 1.
    """

    def __init__(self, m: int, name: str | None = None) -> None:
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ValueError(f"m must be an integer >= 1, got {m!r}")
        self.m = int(m)
        self.name = name or f"stable-{self.m}"
        self._previous: np.ndarray | None = None  # (B, S) the answer seen last
        self._unchanged = np.zeros(0, dtype=np.int64)  # (B,)
        self._cycle = np.zeros(0, dtype=np.int64)  # (B,) the cycle seen last

    def reset(self, n_envs: int) -> None:
        """Clear the memory of every row."""
        self._previous = None
        self._unchanged = np.zeros(n_envs, dtype=np.int64)
        self._cycle = np.zeros(n_envs, dtype=np.int64)

    def act(self, obs: Observation) -> np.ndarray:
        prediction = np.asarray(obs["prediction"])  # (B, S)
        cycle = _cycles(obs)  # (B,)
        B = len(prediction)
        if self._previous is None or len(self._previous) != B:
            self.reset(B)
            self._previous = prediction.copy()
        start = (cycle <= 1) | (cycle < self._cycle)
        # A later cycle of the same episode; an equal cycle is the same observation repeated.
        advanced = ~start & (cycle > self._cycle)
        same = np.all(prediction == self._previous, axis=1)
        self._unchanged = np.where(
            start, 0, np.where(advanced, np.where(same, self._unchanged + 1, 0), self._unchanged)
        )
        update = start | advanced
        self._previous = np.where(update[:, None], prediction, self._previous)
        self._cycle = cycle
        return (self._unchanged >= self.m).astype(np.int64)


SB3_ALGOS = ("ppo", "dqn", "a2c")


def _sb3_class(algo: str | type) -> type:
    if not isinstance(algo, str):
        return algo
    import stable_baselines3

    name = algo.lower()
    if name not in SB3_ALGOS:
        raise ValueError(f"unknown stable-baselines3 algorithm {algo!r}; choose one of {SB3_ALGOS}")
    return getattr(stable_baselines3, name.upper())


def infer_sb3_algo(path: str | os.PathLike[str]) -> str:
    """Which algorithm saved an SB3 ``.zip`` (``"ppo"``, ``"dqn"`` or ``"a2c"``), from its data.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a stable-baselines3 save, or one from another algorithm.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no stable-baselines3 model at {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a stable-baselines3 model save ({err})") from err
    module = str(data.get("policy_class", {}).get("__module__", ""))
    if ".dqn." in module:
        return "dqn"
    if "clip_range" in data:
        return "ppo"
    if "normalize_advantage" in data or "use_rms_prop" in data:
        return "a2c"
    raise ValueError(f"cannot tell which algorithm saved {path}; pass algo= explicitly")


class SB3Policy:
    """Run a trained stable-baselines3 model as a :class:`HaltingPolicy`.

    The observation handed over keeps only the keys the model was trained on, so a model
    trained without ``latent=True`` runs on an env that has ``z_H`` too.

    Args:
        model: any SB3 algorithm instance (``PPO``, ``DQN``, ...) with a ``Discrete(2)`` action.
        deterministic: greedy actions (the default) instead of sampled ones.
        name: label for tables (default: the algorithm's name).
    """

    def __init__(self, model: Any, deterministic: bool = True, name: str | None = None) -> None:
        self.model = model
        self.deterministic = bool(deterministic)
        self.name = name or type(model).__name__.lower()
        spaces = getattr(model.observation_space, "spaces", None)
        self.keys: tuple[str, ...] | None = tuple(spaces) if spaces is not None else None

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        algo: str | type | None = None,
        device: str = "cpu",
        deterministic: bool = True,
        name: str | None = None,
    ) -> SB3Policy:
        """Load a saved model (``model.save(path)``) as a policy.

        Args:
            path: the ``.zip`` written by ``model.save``.
            algo: ``"ppo"``, ``"dqn"``, ``"a2c"`` or the class; None reads it from the file.
            device: torch device of the policy network (``"auto"``, ``"cpu"``, ``"cuda"``, ...).
            deterministic, name: as for the constructor (name defaults to ``algo:stem``).
        """
        path = Path(path)
        if not path.is_file() and path.with_suffix(".zip").is_file():
            path = path.with_suffix(".zip")
        if algo is None:
            algo = infer_sb3_algo(path)
        elif not path.is_file():
            raise FileNotFoundError(f"no stable-baselines3 model at {path}")
        from hrm_agent.devices import resolve_device

        # Checked here: stable-baselines3 would quietly fall back to the CPU for a device
        # this torch build lacks, where the rest of hrm says what is wrong.
        model = _sb3_class(algo).load(path, device=resolve_device(device))
        label = algo if isinstance(algo, str) else algo.__name__.lower()
        return cls(model, deterministic=deterministic, name=name or f"{label}:{path.stem}")

    @property
    def needs_latent(self) -> bool:
        """Whether the model reads ``z_H`` (was trained with ``latent=True``)."""
        return self.keys is not None and "z_H" in self.keys

    def reset(self, n_envs: int) -> None:
        """Feed-forward policies keep no memory."""

    def act(self, obs: Observation) -> np.ndarray:
        if self.keys is not None:
            missing = [k for k in self.keys if k not in obs]
            if missing:
                raise ValueError(
                    f"policy {self.name!r} needs observation key(s) {missing}; "
                    + ("make the env with latent=True" if "z_H" in missing else "")
                )
            obs = {k: obs[k] for k in self.keys}
        actions, _ = self.model.predict(obs, deterministic=self.deterministic)
        return np.asarray(actions, dtype=np.int64).reshape(-1)


# ---------------------------------------------------------------------------------------------
# Evaluation on a fixed puzzle set
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PolicyResult:
    """A policy's score on a fixed puzzle set, with the per-puzzle record.

    Attributes:
        policy: the policy's name.
        task: task name.
        n: puzzles evaluated (each exactly once).
        step_cost: cost of each continue in the returns.
        max_cycles: cycles after which the env halted by itself.
        exact_accuracy: fraction of puzzles whose committed answer was correct.
        cell_accuracy: mean fraction of scored cells right in the committed answers.
        mean_cycles: mean cycles run before committing (the first cycle included).
        mean_return: mean episode return, per puzzle ``solved - step_cost * (cycles - 1)``
            (with ``reward="cells"``, the committed answer's cell accuracy instead of solved).
        seconds: wall time of the evaluation.
        cycles: (n,) int cycles run on puzzle i (row i of the puzzle set).
        solved: (n,) bool committed answer correct.
        returns: (n,) float episode return.
        cell_accuracies: (n,) float.
    """

    policy: str
    task: str
    n: int
    step_cost: float
    max_cycles: int
    exact_accuracy: float
    cell_accuracy: float
    mean_cycles: float
    mean_return: float
    seconds: float
    cycles: np.ndarray
    solved: np.ndarray
    returns: np.ndarray
    cell_accuracies: np.ndarray

    def records(self) -> list[dict[str, Any]]:
        """One dict per puzzle: ``puzzle`` (index), ``cycles``, ``solved``, ``return``,
        ``cell_accuracy``."""
        return [
            {
                "puzzle": i,
                "cycles": int(self.cycles[i]),
                "solved": bool(self.solved[i]),
                "return": float(self.returns[i]),
                "cell_accuracy": float(self.cell_accuracies[i]),
            }
            for i in range(self.n)
        ]

    def to_dict(self, records: bool = True) -> dict[str, Any]:
        """A JSON-ready summary (with the per-puzzle records unless ``records=False``)."""
        out: dict[str, Any] = {
            "policy": self.policy,
            "task": self.task,
            "n": self.n,
            "step_cost": self.step_cost,
            "max_cycles": self.max_cycles,
            "exact_accuracy": self.exact_accuracy,
            "cell_accuracy": self.cell_accuracy,
            "mean_cycles": self.mean_cycles,
            "mean_return": self.mean_return,
            "seconds": self.seconds,
        }
        if records:
            out["records"] = self.records()
        return out


class _OrderedFeed:
    """Serves the evaluation puzzles in order to whichever rows (re)start, each exactly once.

    ``rows[i]`` is the index of the puzzle row i is solving, or -1 when the set ran out and the
    row got a filler (puzzle 0 again) whose result is not counted.
    """

    def __init__(self, puzzles: PuzzleBatch, n_rows: int) -> None:
        self.puzzles = puzzles
        self.next = 0
        self.rows = np.full(n_rows, -1, dtype=np.int64)

    def take(self, row: int) -> tuple[np.ndarray, np.ndarray, int]:
        p = self.puzzles
        k = self.next
        if k < len(p):
            self.next += 1
            self.rows[row] = k
        else:
            self.rows[row], k = -1, 0
        return p.inputs[k], p.targets[k], int(p.ratings[k])


def _check_actions(actions: Any, n: int, name: str) -> np.ndarray:
    a = np.asarray(actions)
    if a.shape != (n,) or not np.issubdtype(a.dtype, np.integer) or not np.isin(a, (0, 1)).all():
        raise ValueError(
            f"policy {name!r} must return an integer array of shape ({n},) of 0 (continue) "
            f"and 1 (halt), got {actions!r}"
        )
    return a.astype(np.int64)


def evaluate_policy(
    policy: HaltingPolicy,
    task: str | Task | EnvFactory,
    puzzles: PuzzleBatch,
    step_cost: float | None = None,
    max_cycles: int | None = None,
    reasoner: Reasoner | None = None,
    batch_size: int = 64,
    *,
    reward: str = "exact",
    checkpoint: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> PolicyResult:
    """Run ``policy`` over a fixed puzzle set on the batched env, each puzzle exactly once.

    The batched env (``ReasoningVectorEnv``, next-step autoreset) runs ``min(batch_size, n)``
    rows; the puzzles are served in order to the rows as they (re)start, and a row that
    restarts after the set ran out gets a filler that is halted at once and not counted. The
    policy sees the env's observations (with ``z_H``, so latent policies run too) and every
    number comes from the env's own rewards and infos.

    Args:
        policy: the halting policy.
        task: a task name or :class:`Task` (the env is built from the other arguments), or a
            factory ``make_env(num_envs) -> ReasoningVectorEnv`` (then ``step_cost`` and
            ``max_cycles`` are the env's, and must not contradict it).
        puzzles: the held-out puzzles and their answers; results are in this order.
        step_cost: cost of each continue (default 0.01).
        max_cycles: cycles after which the env halts by itself (default: the env's own, the
            model's limit N x max_segments).
        reasoner: the model to drive (a ``TorchReasoner``, ``ScriptedReasoner`` or
            :class:`RecordedReasoner`); None loads ``checkpoint`` or the shipped one.
        batch_size: rows of the batched env.
        reward: ``"exact"`` or ``"cells"`` (the env's reward modes).
        checkpoint, device: where the default reasoner comes from.
        progress: show a tqdm bar over puzzles.

    Returns:
        The :class:`PolicyResult`.

    Raises:
        ValueError: for an empty puzzle set, puzzles that do not fit the task, a bad batch
            size, or a policy that returns malformed actions.
    """
    n = len(puzzles)
    if n == 0:
        raise ValueError("puzzles is empty: nothing to evaluate")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    rows = min(int(batch_size), n)
    if isinstance(task, (str, Task)):
        task_name = task if isinstance(task, str) else task.name
        env = ReasoningVectorEnv(
            num_envs=rows,
            task=task_name,
            reasoner=reasoner,
            reward=reward,
            step_cost=0.01 if step_cost is None else step_cost,
            max_cycles=max_cycles,
            checkpoint=checkpoint,
            device=device,
            latent=True,
        )
    elif callable(task):
        env = task(rows)
        if not isinstance(env, ReasoningVectorEnv) or env.num_envs != rows:
            raise ValueError(
                f"the env factory must return a ReasoningVectorEnv with num_envs={rows}, got "
                f"{type(env).__name__}"
            )
        for given, actual, what in (
            (step_cost, env.step_cost, "step_cost"),
            (max_cycles, env.max_cycles, "max_cycles"),
        ):
            if given is not None and given != actual:
                raise ValueError(f"{what}={given} contradicts the env's {what}={actual}")
    else:
        raise ValueError(f"task must be a task name, a Task or an env factory, got {task!r}")
    if puzzles.inputs.shape[1] != env.task.seq_len:
        raise ValueError(
            f"puzzles have {puzzles.inputs.shape[1]} cells but task {env.task.name!r} has "
            f"{env.task.seq_len}"
        )

    cycles = np.zeros(n, dtype=np.int64)
    solved = np.zeros(n, dtype=bool)
    returns = np.zeros(n, dtype=np.float64)
    cells = np.zeros(n, dtype=np.float64)
    seen = np.zeros(n, dtype=bool)
    feed = _OrderedFeed(puzzles, rows)
    env.set_puzzle_source(feed.take)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"eval {policy.name}", unit="puzzle", leave=False)
    start = time.perf_counter()
    try:
        policy.reset(rows)
        obs, _ = env.reset(seed=0)
        episode = np.zeros(rows, dtype=np.float64)  # return so far of each row's episode
        done = 0
        # Each episode lasts at most max_cycles + 1 steps (one more for the autoreset).
        limit = (n // rows + 2) * (env.max_cycles + 2)
        for _ in range(limit):
            if done == n:
                break
            actions = _check_actions(policy.act(obs), rows, policy.name)
            actions = np.where(feed.rows < 0, HALT, actions)  # fillers stop at once
            obs, rewards, terminated, truncated, infos = env.step(actions)
            episode += rewards
            ended = np.flatnonzero(terminated | truncated)
            for i in ended:
                k = feed.rows[i]
                if k < 0:
                    continue
                if seen[k]:
                    raise RuntimeError(f"puzzle {k} finished twice; the feed is broken")
                seen[k] = True
                cycles[k] = int(infos["cycles"][i])
                solved[k] = bool(infos["solved"][i])
                cells[k] = float(infos["cell_accuracy"][i])
                returns[k] = episode[i]
                done += 1
                if bar is not None:
                    bar.update(1)
            # The next step restarts these rows with reward 0: a fresh return.
            episode[ended] = 0.0
        if done < n:
            raise RuntimeError(f"evaluation did not finish: {done} of {n} puzzles done")
    finally:
        env.close()
        if bar is not None:
            bar.close()
    return PolicyResult(
        policy=policy.name,
        task=env.task.name,
        n=n,
        step_cost=env.step_cost,
        max_cycles=env.max_cycles,
        exact_accuracy=float(solved.mean()),
        cell_accuracy=float(cells.mean()),
        mean_cycles=float(cycles.mean()),
        mean_return=float(returns.mean()),
        seconds=time.perf_counter() - start,
        cycles=cycles,
        solved=solved,
        returns=returns,
        cell_accuracies=cells,
    )


# ---------------------------------------------------------------------------------------------
# Recorded trajectories: run the model once, evaluate many policies
# ---------------------------------------------------------------------------------------------

# Confidences are replayed through logits; a logit this large already gives probability 1.0
# in float32, and a tiny positive one keeps the recorded answer the argmax at near-uniform
# confidence.
_MAX_LOGIT = 60.0
_MIN_LOGIT = 1e-6


def answer_logits(prediction: np.ndarray, confidence: np.ndarray, vocab_size: int) -> np.ndarray:
    """Logits whose argmax is ``prediction`` and whose max softmax probability is ``confidence``.

    A logit L on the answer token and 0 elsewhere gives probability ``e^L / (e^L + V - 1)``, so
    ``L = log(c (V - 1) / (1 - c))``. Replayed confidences match the recorded ones to float32
    rounding (about 1e-7), exactly 1.0 stays 1.0.

    Args:
        prediction: (..., S) int answer tokens.
        confidence: (..., S) float max softmax probability per cell.
        vocab_size: V.

    Returns:
        (..., S, V) float32 logits.
    """
    V = int(vocab_size)
    c = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        big = np.log(c * (V - 1)) - np.log1p(-c)  # +inf where c == 1
    big = np.clip(np.nan_to_num(big, nan=_MIN_LOGIT, posinf=_MAX_LOGIT), _MIN_LOGIT, _MAX_LOGIT)
    prediction = np.asarray(prediction, dtype=np.int64)
    logits = np.zeros((*prediction.shape, V), dtype=np.float32)
    np.put_along_axis(logits, prediction[..., None], big.astype(np.float32)[..., None], axis=-1)
    return logits


@dataclass(frozen=True)
class RecordedState:
    """State of a :class:`RecordedReasoner`: which recorded puzzle each row plays, how far.

    Attributes:
        rows: (B,) int index into the recording.
        cycles: (B,) int cycles run since each row's reset.
    """

    rows: np.ndarray
    cycles: np.ndarray


class RecordedReasoner:
    """A reasoner that replays recorded cycles of another one on a fixed set of puzzles.

    Implements ``hrm_env.envs.reasoner.Reasoner``: ``reset`` finds each puzzle in the recording
    (by its cells), ``cycle`` returns what the recorded model read out after that cycle. A
    model's cycles on a puzzle do not depend on when it is stopped or on the other rows of its
    batch, so the env and any policy see what the live model would have given them, at the cost
    of a table lookup. Cycles past the recorded ones repeat the last (the batched env advances
    a halting row once more and drops that readout).

    Build with :meth:`record`; :meth:`save` / :meth:`load` keep a recording in an ``.npz``.

    Args:
        task: task name.
        inputs: (P, S) uint8 recorded puzzles.
        predictions: (P, C, S) uint8 answer after each cycle.
        confidence: (P, C, S) float32 max softmax probability per cell.
        q: (P, C, 2) float32 Q-head (halt, continue) logits.
        latent: (P, C, D) float32 pooled z_H.
        features: optional (P, C, F) float32 extra per-cycle features (the Q head's input
            when recorded with ``hrm_agent.qhead.prefix_features``), to recompute ``q`` for
            another head with :meth:`with_q`.
        targets: optional (P, S) uint8 reference answers (kept when recorded from a
            ``PuzzleBatch``), for :meth:`correct` and :meth:`puzzles`.
        ratings: optional (P,) int ratings, kept with the targets.
    """

    def __init__(
        self,
        task: str,
        inputs: np.ndarray,
        predictions: np.ndarray,
        confidence: np.ndarray,
        q: np.ndarray,
        latent: np.ndarray,
        features: np.ndarray | None = None,
        targets: np.ndarray | None = None,
        ratings: np.ndarray | None = None,
    ) -> None:
        spec = get_task(task)
        self.task = spec.name
        self.seq_len = spec.seq_len
        self.vocab_size = spec.vocab_size
        inputs = np.asarray(inputs, dtype=np.uint8)
        if inputs.ndim != 2 or inputs.shape[1] != self.seq_len or len(inputs) == 0:
            raise ValueError(f"inputs must be (P, {self.seq_len}) with P >= 1, got {inputs.shape}")
        P, S = inputs.shape
        predictions = np.asarray(predictions, dtype=np.uint8)
        if predictions.ndim != 3 or predictions.shape[0] != P or predictions.shape[2] != S:
            raise ValueError(f"predictions must be ({P}, C, {S}), got {predictions.shape}")
        C = predictions.shape[1]
        if C < 1:
            raise ValueError("the recording must hold at least one cycle")
        expected = {"confidence": (P, C, S), "q": (P, C, 2)}
        confidence = np.asarray(confidence, dtype=np.float32)
        q = np.asarray(q, dtype=np.float32)
        latent = np.asarray(latent, dtype=np.float32)
        for name, arr in (("confidence", confidence), ("q", q)):
            if arr.shape != expected[name]:
                raise ValueError(f"{name} must have shape {expected[name]}, got {arr.shape}")
        if latent.ndim != 3 or latent.shape[:2] != (P, C):
            raise ValueError(f"latent must be ({P}, {C}, D), got {latent.shape}")
        if features is not None:
            features = np.asarray(features, dtype=np.float32)
            if features.ndim != 3 or features.shape[:2] != (P, C):
                raise ValueError(f"features must be ({P}, {C}, F), got {features.shape}")
        if targets is not None:
            targets = np.asarray(targets, dtype=np.uint8)
            if targets.shape != (P, S):
                raise ValueError(f"targets must have shape {(P, S)}, got {targets.shape}")
            ratings = np.zeros(P, np.int32) if ratings is None else np.asarray(ratings, np.int32)
            if ratings.shape != (P,):
                raise ValueError(f"ratings must have shape ({P},), got {ratings.shape}")
        else:
            ratings = None
        self.targets, self.ratings = targets, ratings
        self.inputs, self.predictions, self.confidence = inputs, predictions, confidence
        self.q, self.latent, self.features = q, latent, features
        self.latent_size = int(latent.shape[2])
        self._index: dict[bytes, int] = {}
        for i in range(P - 1, -1, -1):  # a repeated puzzle maps to its first row
            self._index[inputs[i].tobytes()] = i

    @property
    def num_puzzles(self) -> int:
        """P, recorded puzzles."""
        return int(self.inputs.shape[0])

    @property
    def num_cycles(self) -> int:
        """C, recorded cycles per puzzle."""
        return int(self.predictions.shape[1])

    @classmethod
    def record(
        cls,
        reasoner: Reasoner,
        inputs: np.ndarray | PuzzleBatch,
        cycles: int,
        batch_size: int = 64,
        features: Callable[[Any], np.ndarray] | None = None,
        progress: bool = False,
    ) -> RecordedReasoner:
        """Run ``reasoner`` ``cycles`` cycles on every puzzle and keep each cycle's readout.

        Args:
            reasoner: the model to record.
            inputs: (P, S) puzzles, or a ``PuzzleBatch`` (whose answers are kept too).
            cycles: C, cycles to record (the env's ``max_cycles``).
            batch_size: puzzles per reasoner call.
            features: optional ``f(state) -> (B, F)`` read after each cycle (e.g.
                ``hrm_agent.qhead.prefix_features`` for a ``TorchReasoner``).
            progress: show a tqdm bar.
        """
        targets = ratings = None
        if isinstance(inputs, PuzzleBatch):
            inputs, targets, ratings = inputs.inputs, inputs.targets, inputs.ratings
        inputs = np.asarray(inputs, dtype=np.uint8)
        if isinstance(cycles, bool) or not isinstance(cycles, (int, np.integer)) or cycles < 1:
            raise ValueError(f"cycles must be an integer >= 1, got {cycles!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if inputs.ndim != 2 or inputs.shape[1] != reasoner.seq_len or len(inputs) == 0:
            raise ValueError(
                f"inputs must be (P, {reasoner.seq_len}) with P >= 1, got {inputs.shape}"
            )
        P, S = inputs.shape
        C = int(cycles)
        predictions = np.zeros((P, C, S), dtype=np.uint8)
        confidence = np.zeros((P, C, S), dtype=np.float32)
        q = np.zeros((P, C, 2), dtype=np.float32)
        latent = np.zeros((P, C, reasoner.latent_size), dtype=np.float32)
        feats: np.ndarray | None = None
        starts: Sequence[int] = range(0, P, batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="record", unit="batch", leave=False)
        for lo in starts:
            hi = min(lo + batch_size, P)
            state = reasoner.reset(inputs[lo:hi])
            for c in range(C):
                state, out = reasoner.cycle(state)
                predictions[lo:hi, c], confidence[lo:hi, c] = read_answer(out.logits)
                q[lo:hi, c] = out.q
                latent[lo:hi, c] = out.latent
                if features is not None:
                    f = np.asarray(features(state), dtype=np.float32)
                    if feats is None:
                        feats = np.zeros((P, C, f.shape[1]), dtype=np.float32)
                    feats[lo:hi, c] = f
        return cls(
            reasoner.task, inputs, predictions, confidence, q, latent, feats, targets, ratings
        )

    def with_q(self, q: np.ndarray) -> RecordedReasoner:
        """The same recording with other Q values (e.g. from a fine-tuned Q head)."""
        return RecordedReasoner(
            self.task, self.inputs, self.predictions, self.confidence, q, self.latent,
            self.features, self.targets, self.ratings,
        )  # fmt: skip

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the recording to an ``.npz`` file (whole or not at all).

        Raises:
            WriteError: naming ``path`` when it cannot be written.
        """
        path = Path(path)
        arrays = {
            "inputs": self.inputs,
            "predictions": self.predictions,
            "confidence": self.confidence,
            "q": self.q,
            "latent": self.latent,
            "task": np.array(self.task),
        }
        optional = {"features": self.features, "targets": self.targets, "ratings": self.ratings}
        arrays.update({k: v for k, v in optional.items() if v is not None})
        # Through a file object: given a path, numpy would add ".npz" to a name without it.
        with atomic_open(path, "wb") as f:
            np.savez_compressed(f, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RecordedReasoner:
        """Read a recording written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no recording at {path}")
        with np.load(path, allow_pickle=False) as data:
            missing = {"inputs", "predictions", "confidence", "q", "latent", "task"} - set(data)
            if missing:
                raise ValueError(f"{path} is not a recording: missing {sorted(missing)}")
            extra = {k: data[k] for k in ("features", "targets", "ratings") if k in data}
            return cls(
                str(data["task"]), data["inputs"], data["predictions"], data["confidence"],
                data["q"], data["latent"], **extra,
            )  # fmt: skip

    def puzzles(self) -> PuzzleBatch:
        """The recorded puzzles with their answers (needs a recording made with answers)."""
        if self.targets is None or self.ratings is None:
            raise ValueError("this recording holds no answers; record it from a PuzzleBatch")
        return PuzzleBatch(self.inputs, self.targets, self.ratings)

    def matches(self, puzzles: PuzzleBatch, cycles: int) -> bool:
        """Whether this recording covers exactly these puzzles (in order) for ``cycles``."""
        return (
            self.inputs.shape == puzzles.inputs.shape
            and bool(np.array_equal(self.inputs, puzzles.inputs))
            and self.num_cycles >= cycles
        )

    def correct(self, targets: np.ndarray | None = None) -> np.ndarray:
        """(P, C) bool: is the recorded answer after each cycle correct.

        Args:
            targets: (P, S) reference answers; default the recorded ones.
        """
        if targets is None:
            targets = self.puzzles().targets
        spec = get_task(self.task)
        P, C, S = self.predictions.shape
        inputs = np.repeat(self.inputs, C, axis=0)  # (P * C, S), cycle-major within a puzzle
        preds = self.predictions.reshape(P * C, S)
        refs = np.repeat(np.asarray(targets, dtype=np.uint8), C, axis=0)
        return np.asarray(spec.is_correct(inputs, preds, refs), dtype=bool).reshape(P, C)

    # -- the reasoner protocol ---------------------------------------------------------------

    def _lookup(self, inputs: np.ndarray) -> np.ndarray:
        rows = np.empty(len(inputs), dtype=np.int64)
        for i, grid in enumerate(inputs):
            k = self._index.get(grid.tobytes())
            if k is None:
                raise ValueError(
                    f"puzzle {i} of the batch is not in the recording ({self.num_puzzles} "
                    "puzzles recorded); record it first or use the live reasoner"
                )
            rows[i] = k
        return rows

    def reset(
        self, inputs: np.ndarray, state: RecordedState | None = None, mask: np.ndarray | None = None
    ) -> RecordedState:
        """Start the given puzzles (only the masked rows when ``state`` and ``mask`` are given)."""
        inputs = np.asarray(inputs)
        if inputs.ndim != 2 or inputs.shape[1] != self.seq_len:
            raise ValueError(f"inputs must have shape (B, {self.seq_len}), got {inputs.shape}")
        inputs = inputs.astype(np.uint8)
        if state is None or mask is None:
            return RecordedState(self._lookup(inputs), np.zeros(len(inputs), dtype=np.int64))
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(state.rows),) or len(inputs) != len(state.rows):
            raise ValueError(
                f"mask must have shape ({len(state.rows)},) and inputs {len(state.rows)} rows, "
                f"got {mask.shape} and {len(inputs)}"
            )
        rows, cycles = state.rows.copy(), state.cycles.copy()
        if mask.any():
            rows[mask] = self._lookup(inputs[mask])
            cycles[mask] = 0
        return RecordedState(rows, cycles)

    def cycle(self, state: RecordedState) -> tuple[RecordedState, CycleOutput]:
        """Advance every row by one cycle and replay its recorded readout."""
        cycles = state.cycles + 1
        step = np.minimum(cycles, self.num_cycles) - 1  # (B,)
        rows = state.rows
        logits = answer_logits(
            self.predictions[rows, step], self.confidence[rows, step], self.vocab_size
        )
        out = CycleOutput(logits, self.q[rows, step].copy(), self.latent[rows, step].copy())
        return RecordedState(rows, cycles), out

    def __repr__(self) -> str:
        return (
            f"RecordedReasoner(task={self.task!r}, puzzles={self.num_puzzles}, "
            f"cycles={self.num_cycles})"
        )


def write_puzzle_csv(task: str | Task, puzzles: PuzzleBatch, path: str | os.PathLike[str]) -> Path:
    """Write puzzles in the task's CSV format, so an env can take them as ``dataset=path``."""
    spec = get_task(task) if isinstance(task, str) else task
    path = Path(path)
    sources = [f"heldout-{i}" for i in range(len(puzzles))]
    ratings = np.asarray(puzzles.ratings, dtype=np.int32)
    if spec.name == "maze":
        from hrm_env.puzzles import maze

        maze.write_csv(path, maze.MazeSet(puzzles.inputs, puzzles.targets, ratings, sources))
    elif spec.name in ("sudoku", "sudoku-mini"):
        from hrm_env.puzzles import sudoku

        sudoku.write_csv(path, sudoku.SudokuSet(puzzles.inputs, puzzles.targets, ratings, sources))
    else:
        raise ValueError(f"no CSV format for task {spec.name!r}")
    return path
