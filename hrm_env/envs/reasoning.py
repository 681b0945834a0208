"""The halting MDP over HRM reasoning: one environment step is one high-level cycle.

Shapes: B batch, S cells, V vocabulary, D latent width.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from hrm_env.envs.defaults import cycle_limit, default_tier
from hrm_env.envs.reasoner import DEFAULT_INFERENCE_THREADS, CycleOutput, Reasoner, check_threads
from hrm_env.puzzles.tasks import PuzzleBatch, Task, get_task, trajectory_views

if TYPE_CHECKING:
    from hrm_env.render.viewer import Viewer, ViewerOptions

__all__ = [
    "ReasoningEnv",
    "CONTINUE",
    "HALT",
    "REWARD_MODES",
    "build_observation_space",
    "read_answer",
    "Q_BOUND",
    "LATENT_BOUND",
    "load_reasoner",
    "reset_options",
    "PuzzleQueue",
]

CONTINUE, HALT = 0, 1
REWARD_MODES = ("exact", "cells")
# Observation bounds (Gymnasium warns about infinite boxes). Q logits beyond +-50 are
# probabilities within 2e-22 of 0 or 1, and a post-norm model's pooled z_H stays far inside
# +-100 (each RMS-normed entry is about 1); values are clipped to the bounds all the same.
Q_BOUND = 50.0
LATENT_BOUND = 100.0


def read_answer(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Answer and confidence from answer logits.

    Args:
        logits: (..., S, V) float logits.

    Returns:
        prediction (..., S) uint8 argmax token and confidence (..., S) float32, the max softmax
        probability, computed as 1 / sum(exp(l - max l)) so large logits cannot overflow.
    """
    logits = np.asarray(logits, dtype=np.float32)
    # Reduce over a leading axis of a (V, ...) copy: numpy reduces a short trailing axis one
    # row at a time, which is 3x slower, and this runs on every step of the batched env.
    by_token = np.ascontiguousarray(np.moveaxis(logits, -1, 0))  # (V, ..., S)
    prediction = by_token.argmax(axis=0).astype(np.uint8)
    by_token -= by_token.max(axis=0)
    np.exp(by_token, out=by_token)
    confidence = 1.0 / by_token.sum(axis=0)
    return prediction, confidence.astype(np.float32)


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """Logistic function, stable for large |x|."""
    x = np.asarray(x, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -x))


def build_observation_space(task: Task, max_cycles: int, latent_size: int | None) -> spaces.Dict:
    """The observation space of one environment (see ``ReasoningEnv``)."""
    S, V = task.seq_len, task.vocab_size
    obs: dict[str, spaces.Space[Any]] = {
        "puzzle": spaces.Box(0, V - 1, (S,), np.uint8),
        "prediction": spaces.Box(0, V - 1, (S,), np.uint8),
        "confidence": spaces.Box(0.0, 1.0, (S,), np.float32),
        "q": spaces.Box(-Q_BOUND, Q_BOUND, (2,), np.float32),
        "cycle": spaces.Box(0.0, float(max_cycles), (1,), np.float32),
    }
    if latent_size is not None:
        obs["z_H"] = spaces.Box(-LATENT_BOUND, LATENT_BOUND, (latent_size,), np.float32)
    return spaces.Dict(obs)


def load_reasoner(
    task: str,
    checkpoint: str | os.PathLike[str] | None,
    device: str,
    threads: int | None = DEFAULT_INFERENCE_THREADS,
) -> Reasoner:
    """The default reasoner: the shipped (or given) checkpoint via ``hrm_agent.load_pretrained``.

    On the CPU, torch is then set to ``threads`` threads (process-wide, as
    ``torch.set_num_threads`` is; 0: torch's default, None: left as it is).

    Raises:
        ImportError: when the PyTorch side (``hrm_agent``, torch) is not installed.
        FileNotFoundError: when there is no checkpoint for the task.
        ValueError: for a device this torch build cannot run on (one line naming it).
    """
    try:
        from hrm_agent import load_pretrained
    except ImportError as err:
        raise ImportError(
            f"the {task!r} environment needs a reasoner: pass reasoner=... or install the PyTorch "
            f"side of hrm (torch and hrm_agent) so the shipped checkpoint can be loaded ({err})"
        ) from err
    from hrm_agent.devices import set_inference_threads

    kwargs: dict[str, Any] = {"device": device}
    if checkpoint is not None:
        kwargs["checkpoint"] = os.fspath(checkpoint)
    reasoner = load_pretrained(task, **kwargs)
    set_inference_threads(threads, getattr(reasoner, "device", "cpu"))
    return reasoner


def reset_options(options: Any, expected: str) -> dict[str, Any]:
    """``reset``'s ``options`` as a fresh dict (None gives an empty one).

    Gymnasium passes ``options`` through untouched, so a list or a string would otherwise
    fail deep inside with a message that names neither ``options`` nor what it takes.

    Args:
        options: what the caller passed.
        expected: what the env takes, for the message (``"a dict such as ..."``).

    Raises:
        ValueError: naming ``options``, what it must be and the type given.
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ValueError(f"options must be {expected}, got {type(options).__name__}")
    return dict(options)


def check_checkpoint(checkpoint: str | os.PathLike[str]) -> None:
    """Fail early, at construction, for a checkpoint path that does not exist."""
    path = Path(checkpoint)
    candidates = [
        path,
        path.with_name(path.name + ".safetensors"),
        path.with_suffix(".safetensors"),
    ]
    if not any(p.is_file() for p in candidates):
        raise FileNotFoundError(
            f"checkpoint {os.fspath(checkpoint)!r} not found (looked for {path} and "
            f"{path.name}.safetensors); pass the path stem of a NAME.safetensors + NAME.json pair"
        )


def check_reasoner(reasoner: Any, task: Task) -> None:
    """Check that ``reasoner`` implements the protocol and fits ``task``.

    Raises:
        TypeError: it is not a ``Reasoner``.
        ValueError: its puzzle size or vocabulary differ from the task's.
    """
    if not isinstance(reasoner, Reasoner):
        raise TypeError(
            "reasoner must implement hrm_env.envs.reasoner.Reasoner (task, seq_len, vocab_size, "
            f"latent_size, reset, cycle), got {type(reasoner).__name__}"
        )
    if reasoner.seq_len != task.seq_len or reasoner.vocab_size != task.vocab_size:
        raise ValueError(
            f"reasoner for task {reasoner.task!r} (seq_len {reasoner.seq_len}, vocab "
            f"{reasoner.vocab_size}) does not fit task {task.name!r} (seq_len {task.seq_len}, "
            f"vocab {task.vocab_size})"
        )


def check_arguments(
    task: Task,
    render_mode: str | None,
    render_modes: list[str],
    reward: str,
    step_cost: float,
    max_cycles: int | None,
    difficulty: str | None,
    dataset: str | os.PathLike[str] | None,
    reasoner: Any,
    checkpoint: str | os.PathLike[str] | None,
) -> tuple[str | None, PuzzleBatch | None]:
    """Validate the constructor arguments shared by the single and the batched env.

    Returns:
        the difficulty tier to draw from (None with a dataset; with neither, the table's
        tier for the task, :data:`hrm_env.envs.defaults.DEFAULT_TIERS`) and the dataset's
        puzzles.

    Raises:
        ValueError: naming the bad argument; FileNotFoundError for a missing file.
    """
    if render_mode is not None and render_mode not in render_modes:
        raise ValueError(
            f"unknown render_mode {render_mode!r}; choose one of {', '.join(render_modes)} or None"
        )
    if reward not in REWARD_MODES:
        raise ValueError(f"unknown reward {reward!r}; choose one of {', '.join(REWARD_MODES)}")
    if not (
        isinstance(step_cost, (int, float, np.floating, np.integer))
        and math.isfinite(step_cost)
        and step_cost >= 0
    ):
        raise ValueError(f"step_cost must be a finite number >= 0, got {step_cost!r}")
    if max_cycles is not None and not (
        isinstance(max_cycles, (int, np.integer))
        and not isinstance(max_cycles, bool)
        and max_cycles >= 1
    ):
        raise ValueError(
            f"max_cycles must be an integer >= 1 (or None: the model's own limit), got "
            f"{max_cycles!r}"
        )
    if dataset is not None and difficulty is not None:
        raise ValueError("give either dataset or difficulty, not both")
    if reasoner is not None and checkpoint is not None:
        raise ValueError("give either reasoner or checkpoint, not both")
    if checkpoint is not None:
        check_checkpoint(checkpoint)
    if reasoner is not None:
        check_reasoner(reasoner, task)
    if dataset is None:
        if difficulty is None:
            difficulty = default_tier(task.name)
        return task.check_difficulty(difficulty), None
    puzzles = task.load(dataset)
    if len(puzzles) == 0:
        raise ValueError(f"dataset {os.fspath(dataset)!r} holds no puzzles")
    return None, puzzles


DIVERSITY_FIELDS = ("carry_sigma", "init_sigma", "input_dropout")
#: ``diversity`` keys the env handles itself (the reasoner never sees them).
ENV_DIVERSITY_FIELDS = ("views",)


def check_samples(
    samples: Any, diversity: Mapping[str, Any] | None, reasoner: Any, task: Task | None = None
) -> tuple[int, dict[str, Any] | None]:
    """Validate the env's ``samples`` and ``diversity`` (and that ``reasoner``, if there is
    one yet, can run diverse trajectories when ``samples > 1``; ``task``, if given, that it
    offers views when ``diversity["views"]`` asks for them).

    Raises:
        ValueError: naming the bad argument.
    """
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
    if diversity is not None:
        if not isinstance(diversity, Mapping):
            raise ValueError(f"diversity must be a dict, got {type(diversity).__name__}")
        known = (*DIVERSITY_FIELDS, *ENV_DIVERSITY_FIELDS)
        unknown = sorted(set(diversity) - set(known))
        if unknown:
            raise ValueError(f"unknown diversity field(s) {unknown}; known: {', '.join(known)}")
        diversity = dict(diversity)
        views = diversity.get("views", False)
        if not isinstance(views, (bool, np.bool_)):
            raise ValueError(f"diversity['views'] must be True or False, got {views!r}")
        if views and task is not None and task.views is None:
            raise ValueError(
                f"diversity['views'] needs a task with symmetries to show the model (maze); "
                f"{task.name!r} offers none"
            )
    if samples > 1 and reasoner is not None and not getattr(reasoner, "supports_diversity", False):
        raise ValueError(
            f"samples={samples} needs a reasoner that runs diverse trajectories "
            f"(supports_diversity, as hrm_agent.TorchReasoner), not {type(reasoner).__name__}"
        )
    return int(samples), diversity


class PuzzleQueue:
    """Puzzles for one environment, drawn ahead in chunks from that environment's generator.

    Generating one puzzle at a time costs several times more per puzzle than a chunk (the
    Sudoku generator works in batches), and the batched env restarts many rows per step, so
    each environment draws ``chunk`` puzzles at once and serves them in order. The sequence
    depends only on the ``rng`` passed in, so seeded environments stay reproducible and a
    sub-env of the batched env sees the same puzzles as a single env with its seed.

    Args:
        task: the task whose generator to use.
        difficulty: the tier (ignored with a dataset).
        dataset: puzzles to draw uniformly from instead of generating.
        chunk: puzzles per draw.
    """

    CHUNK = 16

    def __init__(
        self,
        task: Task,
        difficulty: str | None,
        dataset: PuzzleBatch | None,
        chunk: int = CHUNK,
    ) -> None:
        self.task, self.difficulty, self.dataset, self.chunk = task, difficulty, dataset, chunk
        self._batch: PuzzleBatch | None = None
        self._next = 0

    def clear(self) -> None:
        """Forget the puzzles drawn ahead (on reseeding)."""
        self._batch, self._next = None, 0

    def pop(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
        """The next puzzle (S,), its reference answer (S,) and its rating."""
        if self._batch is None or self._next >= len(self._batch):
            if self.dataset is not None:
                self._batch = self.dataset[rng.integers(len(self.dataset), size=self.chunk)]
            else:
                self._batch = self.task.sample(rng, self.chunk, self.difficulty)
            self._next = 0
        i = self._next
        self._next += 1
        b = self._batch
        return b.inputs[i], b.targets[i], int(b.ratings[i])


class ReasoningEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """Decide when a Hierarchical Reasoning Model should stop thinking.

    ## Description

    An HRM (arXiv 2506.21734) solves a puzzle by iterating two recurrent modules: a fast low
    level and a slow high level. Each **step of this environment is one high-level cycle** of a
    fixed, already trained model (the *reasoner*). After every cycle the agent sees the
    model's current answer, its per-cell confidence and its own Q head's (halt, continue)
    values, and decides whether to let it think one more cycle or to commit the answer. It is
    the halting problem of adaptive computation time as an MDP: thinking costs, a correct
    answer pays. Tasks: ``"sudoku"`` (9x9, ``HRM-Sudoku-v0``), ``"sudoku-mini"`` (4x4,
    ``HRM-SudokuMini-v0``) and ``"maze"`` (30x30 shortest path, ``HRM-Maze-v0``).

    ## Action Space

    ``Discrete(2)``:

    | action | meaning                                               |
    |--------|-------------------------------------------------------|
    | 0      | continue: run one more high-level cycle               |
    | 1      | halt: commit the current answer and end the episode   |

    ## Observation Space

    A ``Dict`` of flat 1-D boxes (what stable-baselines3's ``MultiInputPolicy`` takes), with S
    cells (81 Sudoku, 16 mini Sudoku, 900 maze) and V token values (10 Sudoku, 6 maze):

    | key          | shape  | dtype   | range        | meaning                                  |
    |--------------|--------|---------|--------------|------------------------------------------|
    | `puzzle`     | (S,)   | uint8   | 0..V-1       | the puzzle tokens (Sudoku: 0 = blank)    |
    | `prediction` | (S,)   | uint8   | 0..V-1       | the model's current answer per cell      |
    | `confidence` | (S,)   | float32 | [0, 1]       | max softmax probability per cell         |
    | `q`          | (2,)   | float32 | [-50, 50]    | Q-head logits (halt, continue), clipped  |
    | `cycle`      | (1,)   | float32 | [0, max]     | high-level cycles run so far (>= 1)      |
    | `z_H`        | (D,)   | float32 | [-100, 100]  | only with ``latent=True``: pooled z_H    |

    Maze tokens: 1 wall, 2 open, 3 start, 4 goal, 5 path.

    ## Rewards

    Each continue costs ``step_cost`` (reward ``-step_cost``). On halt (by the agent or at
    ``max_cycles``) the reward is, with ``reward="exact"``, 1.0 if the answer is correct and
    0.0 otherwise (Sudoku: it equals the solution; maze: it is a valid shortest path, any of
    equal length), or with ``reward="cells"`` the fraction of scored cells that are right
    (Sudoku: the blanks; maze: the non-wall cells). Rewards are Python floats.

    ## Starting State

    ``reset`` draws a puzzle (from the task's generator at ``difficulty``, from ``dataset``, or
    the one in ``options={"puzzle": ...}``), resets the reasoner's state and runs the first
    cycle, so the first observation already holds an answer and ``cycle == 1``.

    ## Episode End

    The episode *terminates* when the agent halts. Once ``max_cycles`` cycles have run (the
    observation shows ``cycle == max_cycles``) the env halts by itself: the next step commits
    the answer whatever the action, and a continue there costs nothing. So an episode runs at
    most ``max_cycles`` cycles and lasts at most ``max_cycles`` steps, and the agent always sees
    the answer it commits. (Halting on the step *after* the last cycle, rather than right after
    it, also lets the batched env restart a finished puzzle in the same model call as the
    others' next cycle.) This is a real terminal state of the MDP, not a time limit imposed
    from outside (the cycle count is part of the observation and nothing follows the answer),
    so ``terminated`` is True and ``truncated`` is always False; stable-baselines3 then does
    not bootstrap past it, which is correct.

    ## Info

    ``solved`` (bool, is the current answer correct), ``cell_accuracy`` (float),
    ``cycles`` (int), ``q_halt_prob`` (float, sigmoid of the halt logit), ``rating`` (int,
    the puzzle's difficulty rating; -1 for a puzzle given in ``options``).

    ## Arguments

    - ``task``: ``"sudoku"``, ``"sudoku-mini"`` or ``"maze"``.
    - ``reasoner``: the model to drive (``hrm_env.envs.reasoner.Reasoner``). Default: the
      shipped checkpoint for ``task``, loaded with ``hrm_agent.load_pretrained`` on first reset.
    - ``render_mode``: None, ``"human"`` (pygame window) or ``"rgb_array"``.
    - ``reward``: ``"exact"`` (default) or ``"cells"``.
    - ``step_cost``: cost of each continue, >= 0 (default 0.01).
    - ``max_cycles``: cycles after which the env halts by itself, >= 1 (default: the
      model's own limit, N x max_segments from its checkpoint: 64 for the shipped 9x9
      Sudoku model; 16 for a reasoner that does not say).
    - ``difficulty``: puzzle tier (Sudoku ``easy|medium|hard|extreme|extreme-mix``, maze
      ``easy|medium|hard``); default ``hard``, the hardest tier the shipped model is rated
      on (one table: ``hrm_env.envs.defaults.DEFAULT_TIERS``); ``extreme`` is the benchmark.
    - ``dataset``: a puzzle file (CSV as Sudoku-Extreme / Maze-Hard, or Sudoku ``.txt``) to
      draw puzzles from instead of the generator.
    - ``checkpoint``: path stem of a checkpoint to load instead of the shipped one.
    - ``device``: torch device of the loaded model: ``"auto"``, ``"cpu"``, ``"cuda"``,
      ``"cuda:1"``, ``"mps"`` (default ``"cpu"``). It is checked when the model loads (the
      first reset, or construction with ``latent=True``): a device this torch build cannot
      run on raises ``ValueError`` naming what it offers.
    - ``latent``: add the pooled high-level state ``z_H`` to the observation.
    - ``viewer_options``: ``hrm_env.render.ViewerOptions`` for the pygame viewer.
    - ``samples``: trajectories per puzzle, K >= 1 (default 1). With K > 1 the reasoner runs
      K rows of the same puzzle in one batch, row 0 the plain model and the others with the
      ``diversity`` noise (seeded through the env's ``np_random``); after every cycle the
      observation, info and the committed answer are those of the trajectory whose Q head is
      most sure (highest ``q_halt``), and ``info["trajectory"]`` says which. Needs a reasoner
      with ``supports_diversity`` (``hrm_agent.TorchReasoner``, the default).
    - ``diversity``: the noise of the trajectories beyond the first, a dict of
      ``hrm_agent.sampling.Diversity`` fields (``carry_sigma``, ``init_sigma``,
      ``input_dropout``); default: that module's ``DEFAULT_DIVERSITY``. ``"views": True``
      (maze) shows trajectory k the puzzle under the task's k-th symmetry (its 8 rotations
      and reflections) and reads its answer back in the puzzle's own frame; alone, it adds
      no noise.
    - ``threads``: CPU threads of torch for the model the env loads itself (no ``reasoner``
      given): an integer >= 1, 0 for torch's default (a thread per core), None to leave
      torch's setting. Set process-wide when the model loads. Default
      ``DEFAULT_INFERENCE_THREADS`` (1: a latency-bound cycle on a busy CPU is fastest so).

    ## Version History

    - v0: initial version.

    ## Example

    >>> import gymnasium as gym, hrm_env
    >>> from hrm_env.envs.reasoner import ScriptedReasoner
    >>> env = gym.make("HRM-SudokuMini-v0", reasoner=ScriptedReasoner("sudoku-mini", solve_at=2))
    >>> obs, info = env.reset(seed=0)
    >>> obs, reward, terminated, truncated, info = env.step(0)   # think one more cycle
    >>> obs, reward, terminated, truncated, info = env.step(1)   # halt
    >>> terminated, reward, info["solved"]
    (True, 1.0, True)
    """

    metadata: dict[str, Any] = {"render_modes": ["human", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
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
        samples: int = 1,
        diversity: Mapping[str, float] | None = None,
        threads: int | None = DEFAULT_INFERENCE_THREADS,
    ) -> None:
        self.threads = check_threads(threads)
        self.task: Task = get_task(task)
        self.samples, self.diversity = check_samples(samples, diversity, reasoner, self.task)
        self.difficulty, self.dataset = check_arguments(
            self.task, render_mode, self.metadata["render_modes"], reward, step_cost,
            max_cycles, difficulty, dataset, reasoner, checkpoint,
        )  # fmt: skip
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
            # The observation space needs the latent width now, so load the model now.
            reasoner = load_reasoner(self.task.name, checkpoint, device, self.threads)
            check_reasoner(reasoner, self.task)
        self.reasoner: Reasoner | None = reasoner
        self.latent = bool(latent)
        self.viewer_options = viewer_options

        self.action_space = spaces.Discrete(2)
        self.observation_space = build_observation_space(
            self.task, self.max_cycles, reasoner.latent_size if latent and reasoner else None
        )

        self._puzzles = PuzzleQueue(self.task, self.difficulty, self.dataset)
        self._state: Any = None
        self._inputs = np.zeros(self.task.seq_len, dtype=np.uint8)  # (S,)
        self._targets = np.zeros(self.task.seq_len, dtype=np.uint8)  # (S,)
        self._rating = -1
        self._prediction = np.zeros(self.task.seq_len, dtype=np.uint8)  # (S,)
        self._previous: np.ndarray | None = None  # (S,) the answer one cycle earlier
        self._confidence = np.zeros(self.task.seq_len, dtype=np.float32)  # (S,)
        self._q = np.zeros(2, dtype=np.float32)
        self._latent: np.ndarray | None = None  # (D,)
        self._cycles = 0
        self._trajectory = 0
        self._solved = False
        self._cell_accuracy = 0.0
        self._done = True
        self._started = False
        self._last_reward: float | None = None
        self._q_history: list[tuple[float, float]] = []
        self._traces: dict[str, list[float]] = {"confidence": [], "changed": []}
        if self.samples > 1:
            self._traces["trajectory"] = []  # the chosen trajectory's index, for the panel
        # With diversity["views"]: each row's gather index into its view and back, (K, S).
        self._views: tuple[np.ndarray, np.ndarray] | None = None
        if self.samples > 1 and (self.diversity or {}).get("views"):
            assert self.task.views is not None  # checked by check_samples
            self._views = trajectory_views(self.task.views, self.samples)
        self._viewer: Viewer | None = None

    # -- the MDP -------------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Draw a puzzle (or take ``options["puzzle"]``) and run the first cycle.

        Raises:
            ValueError: for ``options`` other than None or ``{"puzzle": ...}``, a malformed
                puzzle, or (when the default model loads) a device torch cannot use.
        """
        super().reset(seed=seed)
        if seed is not None:
            self._puzzles.clear()
        options = reset_options(
            options, "None or a dict such as {'puzzle': <puzzle string or grid>}"
        )
        puzzle = options.pop("puzzle", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; the only one is 'puzzle'")
        if puzzle is not None:
            inputs = self.task.parse_puzzle(puzzle)
            targets = self.task.solve(inputs[None])[0]
            rating = -1
        else:
            inputs, targets, rating = self._draw()
        if self.reasoner is None:
            reasoner = load_reasoner(self.task.name, self.checkpoint, self.device, self.threads)
            check_reasoner(reasoner, self.task)
            self.reasoner = reasoner
        self._inputs, self._targets, self._rating = inputs, targets, rating
        if self.samples == 1:
            self._state = self.reasoner.reset(inputs[None])
        else:
            check_samples(self.samples, self.diversity, self.reasoner)
            K = self.samples
            noise = {k: v for k, v in (self.diversity or {}).items() if k in DIVERSITY_FIELDS}
            if self._views is not None and not noise:
                noise = {"carry_sigma": 0.0}  # views alone: no noise (not the default's)
            rows = np.repeat(inputs[None], K, axis=0)
            if self._views is not None:
                rows = np.take_along_axis(rows, self._views[0], axis=1)
            self._state = self.reasoner.reset(  # type: ignore[call-arg]
                rows,
                diversity=noise,
                seed=int(self.np_random.integers(2**63)),
                clean=np.arange(K) == 0,
            )
        self._cycles = 0
        self._previous = None
        self._q_history = []
        self._traces = {name: [] for name in self._traces}
        self._last_reward = None
        self._run_cycle()
        self._done = False
        self._started = True
        if self.render_mode == "human":
            self.render()
        return self._observation(), self._info()

    def step(
        self, action: Any
    ) -> tuple[dict[str, np.ndarray], SupportsFloat, bool, bool, dict[str, Any]]:
        """Continue (0: one more cycle, costs ``step_cost``) or halt (1: score the answer).

        Raises:
            ValueError: for an action other than 0 or 1.
            RuntimeError: before ``reset`` or after the episode ended.
        """
        action = self._check_action(action)
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended (the answer was committed); call reset()")
        # Once max_cycles have run, continuing is not possible: the env halts by itself.
        halt = action == HALT or self._cycles >= self.max_cycles
        if halt:
            reward = self._score()
            self._done = True
        else:
            self._run_cycle()
            reward = -self.step_cost
        self._last_reward = reward
        if self.render_mode == "human":
            self.render()
        return self._observation(), float(reward), bool(halt), False, self._info()

    def _check_action(self, action: Any) -> int:
        value = np.asarray(action)
        if (
            value.shape != ()
            or not np.issubdtype(value.dtype, np.integer)
            or int(value) not in (CONTINUE, HALT)
        ):
            raise ValueError(f"action must be 0 (continue) or 1 (halt), got {action!r}")
        return int(value)

    def _draw(self) -> tuple[np.ndarray, np.ndarray, int]:
        return self._puzzles.pop(self.np_random)

    def _run_cycle(self) -> None:
        assert self.reasoner is not None
        self._state, out = self.reasoner.cycle(self._state)
        self._apply(out)

    def _apply(self, out: CycleOutput) -> None:
        """Take the readout of the chosen row of a cycle as the new current answer: row 0, or
        with several trajectories the one with the highest ``q_halt``."""
        row = 0 if self.samples == 1 else int(np.argmax(out.q[:, 0]))
        self._trajectory = row
        logits = out.logits[row]
        if self._views is not None:
            logits = logits[self._views[1][row]]  # the row's view, back in the puzzle's frame
        prediction, confidence = read_answer(logits)
        self._previous = self._prediction if self._cycles > 0 else None
        # Cells changed since the last cycle; on the first cycle, cells written over the puzzle.
        before = self._inputs if self._previous is None else self._previous
        changed = float(np.mean(prediction != before))
        self._prediction, self._confidence = prediction, confidence
        self._q = np.clip(np.asarray(out.q[row], dtype=np.float32), -Q_BOUND, Q_BOUND)
        self._latent = np.clip(
            np.asarray(out.latent[row], dtype=np.float32), -LATENT_BOUND, LATENT_BOUND
        )
        self._cycles += 1
        inputs, pred, targets = self._inputs[None], prediction[None], self._targets[None]
        self._solved = bool(self.task.is_correct(inputs, pred, targets)[0])
        self._cell_accuracy = float(self.task.cell_accuracy(inputs, pred, targets)[0])
        self._q_history.append((float(self._q[0]), float(self._q[1])))
        self._traces["confidence"].append(float(confidence.mean()))
        self._traces["changed"].append(changed)
        if self.samples > 1:
            self._traces["trajectory"].append(float(row))

    def _score(self) -> float:
        if self.reward_mode == "exact":
            return 1.0 if self._solved else 0.0
        return self._cell_accuracy

    def _observation(self) -> dict[str, np.ndarray]:
        # Fresh arrays every call: users keep observations, so none may alias env state.
        obs = {
            "puzzle": self._inputs.copy(),
            "prediction": self._prediction.copy(),
            "confidence": self._confidence.copy(),
            "q": self._q.copy(),
            "cycle": np.array([self._cycles], dtype=np.float32),
        }
        if self.latent:
            assert self._latent is not None
            obs["z_H"] = self._latent.copy()
        return obs

    def _info(self) -> dict[str, Any]:
        info = {
            "solved": self._solved,
            "cell_accuracy": self._cell_accuracy,
            "cycles": self._cycles,
            "q_halt_prob": float(sigmoid(self._q[0])),
            "rating": self._rating,
        }
        if self.samples > 1:
            info["trajectory"] = self._trajectory
        return info

    # -- rendering -------------------------------------------------------------------------------

    @property
    def traces(self) -> dict[str, list[float]]:
        """Per-cycle series of this episode plotted under the Q plot (one value per cycle).

        Built in: ``confidence`` (mean confidence) and ``changed`` (fraction of cells whose
        answer changed), and with ``samples > 1`` ``trajectory`` (the chosen one's index). Add your own by inserting a list under a new name and appending one
        value after every cycle (e.g. residual norms from a wrapper); names persist across
        episodes, values are cleared on reset.
        """
        return self._traces

    @property
    def solution(self) -> np.ndarray:
        """(S,) the reference answer of the current puzzle."""
        return self._targets.copy()

    def snapshot(self) -> Any:
        """What the viewer draws: the current puzzle, answer, history and traces."""
        from hrm_env.render.viewer import Snapshot

        return Snapshot(
            task=self.task.name,
            grid_shape=self.task.grid_shape,
            puzzle=self._inputs,
            prediction=self._prediction,
            confidence=self._confidence,
            previous=self._previous,
            solution=self._targets,
            cycle=self._cycles,
            max_cycles=self.max_cycles,
            q_history=list(self._q_history),
            traces={k: list(v) for k, v in self._traces.items()},
            halted=self._done,
            solved=self._solved,
            reward=self._last_reward,
        )

    def render(self) -> np.ndarray | None:
        """Draw the current cycle: an (H, W, 3) uint8 frame in ``rgb_array`` mode, else None."""
        if self.render_mode is None:
            gym.logger.warn(
                "render() was called without a render_mode; make the env with "
                'render_mode="rgb_array" or "human"'
            )
            return None
        if not self._started:
            raise RuntimeError("call reset() before render()")
        if self._viewer is None:
            from hrm_env.render.viewer import Viewer

            self._viewer = Viewer(
                self.task.name,
                render_mode=self.render_mode,
                fps=self.metadata["render_fps"],
                options=self.viewer_options,
            )
        return self._viewer.render(self.snapshot())

    def close(self) -> None:
        """Close the viewer window, if any. Safe to call more than once."""
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None
