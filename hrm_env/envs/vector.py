"""The batched halting environment: N puzzles advanced by one reasoner call per step.

``gym.make_vec("HRM-Sudoku-v0", num_envs=N, vectorization_mode="vector_entry_point")`` builds
it. Each sub-environment behaves exactly as a ``ReasoningEnv`` seeded the same way, but all rows
share one reasoner state, so every ``step`` is a single ``reasoner.cycle`` call on the model's
device for the whole batch. Sub-environments that ended are reset in place at the next step
(``AutoresetMode.NEXT_STEP``) with ``reasoner.reset(inputs, state, mask)``, which reinitialises
only their rows, so the others never wait.

Shapes: N sub-environments (the batch), S cells, V vocabulary, D latent width.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from hrm_env.envs.defaults import cycle_limit
from hrm_env.envs.reasoner import DEFAULT_INFERENCE_THREADS, CycleOutput, Reasoner, check_threads
from hrm_env.envs.reasoning import (
    CONTINUE,
    HALT,
    LATENT_BOUND,
    Q_BOUND,
    PuzzleQueue,
    build_observation_space,
    check_arguments,
    check_reasoner,
    load_reasoner,
    read_answer,
    reset_options,
    sigmoid,
)
from hrm_env.puzzles.tasks import Task, get_task

if TYPE_CHECKING:
    from hrm_env.render.viewer import Viewer, ViewerOptions

__all__ = ["ReasoningVectorEnv"]


PuzzleSource = Callable[[int], "tuple[np.ndarray, np.ndarray, int]"]
"""``source(row) -> (puzzle, answer, rating)``: see :meth:`ReasoningVectorEnv.set_puzzle_source`."""


class ReasoningVectorEnv(VectorEnv):
    """``num_envs`` halting environments driven by one batched reasoner.

    Spaces, rewards, episode ends and info keys are those of ``ReasoningEnv``, batched:
    observations are a ``Dict`` of (N, ...) arrays, actions a ``MultiDiscrete([2] * N)``
    array, and infos a dict of (N,) arrays, each with its ``_key`` mask (all True). The step
    after a sub-environment terminated resets it: that step ignores its action and returns
    its new puzzle's first observation with reward 0 (Gymnasium's next-step autoreset).

    ``reset(seed=s)`` seeds sub-environment i with ``s + i`` (or takes a list of seeds), so
    sub-environment i follows the same puzzles and trajectory as ``ReasoningEnv`` reset with
    ``seed=s + i`` and autoreset without a seed.

    Args:
        num_envs: N, the batch size.
        task, reasoner, reward, step_cost, max_cycles, difficulty, dataset, checkpoint, device,
            latent, viewer_options, threads: as for ``ReasoningEnv``.
        render_mode: None or ``"rgb_array"`` (``render()`` returns one frame per sub-env).

    Example:
        >>> import gymnasium as gym, hrm_env
        >>> envs = gym.make_vec("HRM-Sudoku-v0", num_envs=64,
        ...                     vectorization_mode="vector_entry_point")  # doctest: +SKIP
        >>> obs, infos = envs.reset(seed=0)                                # doctest: +SKIP
        >>> obs, rewards, terminated, truncated, infos = envs.step(
        ...     (obs["q"][:, 0] > obs["q"][:, 1]).astype(int))             # doctest: +SKIP
    """

    metadata: dict[str, Any] = {
        "render_modes": ["rgb_array"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int = 1,
        task: str = "sudoku",
        reasoner: Reasoner | None = None,
        render_mode: str | None = None,
        reward: str = "exact",
        step_cost: float = 0.01,
        max_cycles: int | None = None,
        difficulty: str | None = None,
        dataset: str | os.PathLike[str] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        latent: bool = False,
        viewer_options: ViewerOptions | None = None,
        threads: int | None = DEFAULT_INFERENCE_THREADS,
    ) -> None:
        self.threads = check_threads(threads)
        if not (isinstance(num_envs, (int, np.integer)) and num_envs >= 1):
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.task: Task = get_task(task)
        self.difficulty, self.dataset = check_arguments(
            self.task, render_mode, self.metadata["render_modes"], reward, step_cost,
            max_cycles, difficulty, dataset, reasoner, checkpoint,
        )  # fmt: skip
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.reward_mode = reward
        self.step_cost = float(step_cost)
        self.max_cycles = (
            cycle_limit(self.task.name, reasoner, checkpoint)
            if max_cycles is None
            else int(max_cycles)
        )
        self.checkpoint = checkpoint
        self.device = device
        if reasoner is None and latent:
            reasoner = load_reasoner(self.task.name, checkpoint, device, self.threads)
            check_reasoner(reasoner, self.task)
        self.reasoner: Reasoner | None = reasoner
        self.latent = bool(latent)
        self.viewer_options = viewer_options

        self.single_observation_space = build_observation_space(
            self.task, self.max_cycles, reasoner.latent_size if latent and reasoner else None
        )
        self.single_action_space = spaces.Discrete(2)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        N, S = self.num_envs, self.task.seq_len
        self._rngs: list[np.random.Generator | None] = [None] * N
        self._queues = [PuzzleQueue(self.task, self.difficulty, self.dataset) for _ in range(N)]
        self._source: PuzzleSource | None = None
        self._state: Any = None
        self._inputs = np.zeros((N, S), dtype=np.uint8)
        self._targets = np.zeros((N, S), dtype=np.uint8)
        self._ratings = np.full(N, -1, dtype=np.int64)
        self._prediction = np.zeros((N, S), dtype=np.uint8)
        self._previous = np.zeros((N, S), dtype=np.uint8)  # the answer one cycle earlier
        self._confidence = np.zeros((N, S), dtype=np.float32)
        self._q = np.zeros((N, 2), dtype=np.float32)
        self._latent: np.ndarray | None = None  # (N, D)
        self._cycles = np.zeros(N, dtype=np.int64)
        self._solved = np.zeros(N, dtype=bool)
        self._cell_accuracy = np.zeros(N, dtype=np.float64)
        self._rewards = np.zeros(N, dtype=np.float64)
        self._autoreset = np.zeros(N, dtype=bool)
        self._started = False
        self._q_history: list[list[tuple[float, float]]] = [[] for _ in range(N)]
        self._viewer: Viewer | None = None

    # -- the batched MDP -------------------------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Draw a puzzle for every sub-environment and run its first cycle.

        Args:
            seed: an int (sub-env i gets ``seed + i``), a list of N ints or Nones, or None.
            options: no options are accepted (a ``ValueError`` names any given).
        """
        if reset_options(options, "None or an empty dict (the batched env takes no options)"):
            raise ValueError(f"unknown reset options {sorted(options)}; the batched env has none")
        seeds = self._seeds(seed)
        if isinstance(seed, (int, np.integer)):
            super().reset(seed=int(seed))
        for i, s in enumerate(seeds):
            if s is not None or self._rngs[i] is None:
                self._rngs[i] = seeding.np_random(s)[0]
                self._queues[i].clear()
        everyone = np.ones(self.num_envs, dtype=bool)
        self._draw(everyone)
        if self.reasoner is None:
            reasoner = load_reasoner(self.task.name, self.checkpoint, self.device, self.threads)
            check_reasoner(reasoner, self.task)
            self.reasoner = reasoner
        self._state = self.reasoner.reset(self._inputs)
        self._state, out = self.reasoner.cycle(self._state)
        self._cycles[:] = 0
        self._apply(out, everyone, fresh=everyone)
        self._rewards[:] = 0.0
        self._autoreset[:] = False
        self._started = True
        return self._observations(), self._infos()

    def _seeds(self, seed: int | Sequence[int | None] | None) -> list[int | None]:
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)):
            return [int(seed) + i for i in range(self.num_envs)]
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} seeds, got {len(seeds)}")
        return [None if s is None else int(s) for s in seeds]

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every sub-environment: one reasoner call for all rows that think or restart.

        Raises:
            ValueError: for actions of the wrong shape or other than 0 and 1.
        """
        obs, rewards, terminated, truncated, infos, _ = self.transition(actions, same_step=False)
        return obs, rewards, terminated, truncated, infos

    def transition(
        self, actions: Any, same_step: bool
    ) -> tuple[
        dict[str, np.ndarray],
        np.ndarray,
        np.ndarray,
        np.ndarray,
        dict[str, Any],
        tuple[dict[str, np.ndarray], dict[str, Any]] | None,
    ]:
        """One step, with next-step (Gymnasium) or same-step (stable-baselines3) autoreset.

        A halting row needs no cycle (the answer it commits is the one already shown), so with
        ``same_step`` it is restarted *before* the batch's one reasoner call and that call runs
        its new puzzle's first cycle: the returned observation is already the new episode's.

        Returns:
            observations, rewards, terminated, truncated, infos as ``step``, and with
            ``same_step`` the (observations, infos) the finished rows ended with (all rows,
            valid where ``terminated``), else None.
        """
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = self._check_actions(actions)
        restart = self._autoreset.copy()  # rows that ended last step (next-step autoreset)
        live = ~restart
        # Once max_cycles have run, continuing is not possible: the row halts by itself.
        halt = live & ((actions == HALT) | (self._cycles >= self.max_cycles))
        think = live & ~halt
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        rewards[think] = -self.step_cost
        if halt.any():
            score = self._solved if self.reward_mode == "exact" else self._cell_accuracy
            rewards[halt] = score[halt]
        final = None
        if same_step:
            final = (self._observations(), self._infos())
            restart |= halt
        assert self.reasoner is not None
        if restart.any():
            self._draw(restart)
            self._state = self.reasoner.reset(self._inputs, self._state, restart)
        advance = think | restart
        if advance.any():
            # Rows that halt are advanced too (one call for the batch) but their readout is
            # dropped: they keep showing the committed answer until they restart.
            self._state, out = self.reasoner.cycle(self._state)
            self._apply(out, advance, fresh=restart)
        self._rewards = rewards
        self._autoreset = halt & ~restart
        return (
            self._observations(),
            rewards,
            halt,
            np.zeros(self.num_envs, dtype=bool),
            self._infos(),
            final,
        )

    def _check_actions(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions)
        if (
            a.shape != (self.num_envs,)
            or not np.issubdtype(a.dtype, np.integer)
            or not ((a == CONTINUE) | (a == HALT)).all()
        ):
            raise ValueError(
                f"actions must be an integer array of shape ({self.num_envs},) holding 0 "
                f"(continue) or 1 (halt), got {actions!r}"
            )
        return a

    def set_puzzle_source(self, source: PuzzleSource | None) -> None:
        """Choose where (re)starting rows get their puzzles from.

        By default each row draws from its own seeded stream (the generator, or ``dataset``).
        A ``source(row) -> (puzzle (S,), answer (S,), rating)`` takes over instead, for every
        draw from the next ``reset``/autoreset on, so a caller can serve a fixed puzzle list
        in its own order (``hrm_agent.policies.evaluate_policy`` does). ``None`` restores the
        seeded streams. The source is trusted: its puzzles are not validated again.
        """
        if source is not None and not callable(source):
            raise TypeError(
                f"source must be callable (row -> puzzle, answer, rating), got {source!r}"
            )
        self._source = source

    def _draw(self, rows: np.ndarray) -> None:
        for i in np.flatnonzero(rows):
            rng = self._rngs[i]
            assert rng is not None
            if self._source is not None:
                inputs, targets, rating = self._source(int(i))
            else:
                inputs, targets, rating = self._queues[i].pop(rng)
            self._inputs[i], self._targets[i], self._ratings[i] = inputs, targets, rating

    def _apply(self, out: CycleOutput, rows: np.ndarray, fresh: np.ndarray) -> None:
        """Take the readout of ``rows`` as their current answers; ``fresh`` rows restarted."""
        q = np.clip(np.asarray(out.q, dtype=np.float32), -Q_BOUND, Q_BOUND)
        latent = None
        if self.latent:
            latent = np.clip(np.asarray(out.latent, dtype=np.float32), -LATENT_BOUND, LATENT_BOUND)
            if self._latent is None:
                self._latent = np.zeros((self.num_envs, latent.shape[1]), dtype=np.float32)
        if rows.all():
            # Every row advanced (the common case): whole arrays, no masked copies. The old
            # arrays are replaced, never written into, and observations are copies anyway.
            prediction, confidence = read_answer(out.logits)
            if fresh.any():
                self._previous = np.where(fresh[:, None], prediction, self._prediction)
            else:
                self._previous = self._prediction
            self._prediction, self._confidence, self._q = prediction, confidence, q
            if latent is not None:
                self._latent = latent
            self._cycles = np.where(fresh, 1, self._cycles + 1)
            self._solved = self.task.is_correct(self._inputs, prediction, self._targets)
            self._cell_accuracy = self.task.cell_accuracy(self._inputs, prediction, self._targets)
        else:
            prediction, confidence = read_answer(out.logits[rows])
            self._previous = self._previous.copy()
            self._previous[rows] = np.where(fresh[rows, None], prediction, self._prediction[rows])
            self._prediction = self._prediction.copy()
            self._prediction[rows] = prediction
            self._confidence = self._confidence.copy()
            self._confidence[rows] = confidence
            self._q = self._q.copy()
            self._q[rows] = q[rows]
            if latent is not None:
                assert self._latent is not None
                self._latent = self._latent.copy()
                self._latent[rows] = latent[rows]
            self._cycles = np.where(fresh, 1, self._cycles + rows)
            inputs, targets = self._inputs[rows], self._targets[rows]
            self._solved = self._solved.copy()
            self._solved[rows] = self.task.is_correct(inputs, prediction, targets)
            self._cell_accuracy = self._cell_accuracy.copy()
            self._cell_accuracy[rows] = self.task.cell_accuracy(inputs, prediction, targets)
        if self.render_mode is not None:
            for i in np.flatnonzero(rows):
                if fresh[i]:
                    self._q_history[i] = []
                self._q_history[i].append((float(self._q[i, 0]), float(self._q[i, 1])))

    def _observations(self) -> dict[str, np.ndarray]:
        obs = {
            "puzzle": self._inputs.copy(),
            "prediction": self._prediction.copy(),
            "confidence": self._confidence.copy(),
            "q": self._q.copy(),
            "cycle": self._cycles[:, None].astype(np.float32),
        }
        if self.latent:
            assert self._latent is not None
            obs["z_H"] = self._latent.copy()
        return obs

    def _infos(self) -> dict[str, Any]:
        values = {
            "solved": self._solved.copy(),
            "cell_accuracy": self._cell_accuracy.copy(),
            "cycles": self._cycles.copy(),
            "q_halt_prob": sigmoid(self._q[:, 0]),
            "rating": self._ratings.copy(),
        }
        infos: dict[str, Any] = {}
        for key, value in values.items():
            infos[key] = value
            infos[f"_{key}"] = np.ones(self.num_envs, dtype=bool)
        return infos

    # -- rendering ---------------------------------------------------------------------------

    def render(self) -> tuple[np.ndarray, ...] | None:
        """One (H, W, 3) uint8 frame per sub-environment in ``rgb_array`` mode."""
        if self.render_mode is None:
            return None
        if not self._started:
            raise RuntimeError("call reset() before render()")
        from hrm_env.render.viewer import Snapshot, Viewer

        if self._viewer is None:
            self._viewer = Viewer(
                self.task.name, "rgb_array", self.metadata["render_fps"], self.viewer_options
            )
        frames = []
        for i in range(self.num_envs):
            snap = Snapshot(
                task=self.task.name,
                grid_shape=self.task.grid_shape,
                puzzle=self._inputs[i],
                prediction=self._prediction[i],
                confidence=self._confidence[i],
                previous=self._previous[i] if self._cycles[i] > 1 else None,
                solution=self._targets[i],
                cycle=int(self._cycles[i]),
                max_cycles=self.max_cycles,
                q_history=list(self._q_history[i]),
                traces={},
                halted=bool(self._autoreset[i]),
                solved=bool(self._solved[i]),
                reward=float(self._rewards[i]),
            )
            frame = self._viewer.render(snap)
            assert frame is not None
            frames.append(frame)
        return tuple(frames)

    def close_extras(self, **kwargs: Any) -> None:
        """Close the viewer, if any."""
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None
