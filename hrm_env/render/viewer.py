"""The pygame viewer: a puzzle board on the left, a panel of the reasoning on the right.

Follows Gymnasium's pygame contract: pygame is imported lazily with an install hint, only
``pygame.display.init()`` (never ``pygame.init()``) and only in ``human`` mode, ``rgb_array``
draws on an off-screen ``Surface`` and returns ``np.transpose(pixels3d, (1, 0, 2))``, human
mode pumps events and closes on QUIT, and ``close()`` may be called any number of times.

The viewer knows nothing of environments: it draws a ``Snapshot``. One painter per domain
(``hrm_env.render.sudoku``, ``hrm_env.render.maze``) draws the board; ``panel`` draws the rest.

Shapes: S cells; C cycles run so far; H, W frame height and width in pixels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["Snapshot", "Viewer", "ViewerOptions", "import_pygame", "Palette"]


def import_pygame() -> ModuleType:
    """Import pygame(-ce), or say how to install it."""
    # Keep pygame's greeting out of users' logs and of captured test output.
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError as err:
        from gymnasium.error import DependencyNotInstalled

        raise DependencyNotInstalled(
            'pygame is not installed; rendering needs it: run `pip install "pygame-ce>=2.4"`'
        ) from err
    return pygame


@dataclass(frozen=True)
class ViewerOptions:
    """What the viewer shows and how big.

    Attributes:
        show_errors: mark wrong cells when the solution is known.
        show_changes: outline the cells whose answer changed this cycle.
        show_traces: add the trace plot (mean confidence, cells changed, and any traces the
            snapshot carries, e.g. residuals) under the Q plot.
        scale: multiply every size (1.0 gives a 900x600 frame; 2.0 for print).
    """

    show_errors: bool = True
    show_changes: bool = True
    show_traces: bool = True
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not (0.25 <= self.scale <= 8):
            raise ValueError(f"scale must lie in [0.25, 8], got {self.scale}")


@dataclass
class Snapshot:
    """Everything one frame shows.

    Attributes:
        task: task name (``sudoku``, ``sudoku-mini``, ``maze``), picks the painter.
        grid_shape: (rows, cols) of the board.
        puzzle: (S,) uint8 puzzle tokens.
        prediction: (S,) uint8 the model's current answer.
        confidence: (S,) float32 max softmax probability per cell.
        previous: (S,) uint8 the answer one cycle earlier, or None on the first cycle.
        solution: (S,) uint8 reference answer, or None if unknown.
        cycle: cycles run so far.
        max_cycles: the cycle limit (the plots' x axis grows towards it with ``cycle``).
        q_history: per cycle, the Q head's (halt, continue) logits.
        traces: named per-cycle series in [0, 1] for the trace plot.
        halted: the answer has been committed.
        solved: the current answer is correct (None if unknown).
        reward: the last step's reward, or None.
    """

    task: str
    grid_shape: tuple[int, int]
    puzzle: np.ndarray
    prediction: np.ndarray
    confidence: np.ndarray
    previous: np.ndarray | None
    solution: np.ndarray | None
    cycle: int
    max_cycles: int
    q_history: list[tuple[float, float]] = field(default_factory=list)
    traces: dict[str, list[float]] = field(default_factory=dict)
    halted: bool = False
    solved: bool | None = None
    reward: float | None = None


class Palette:
    """Colours chosen to read well in print and for colour-blind readers (Okabe-Ito hues)."""

    background = (255, 255, 255)
    ink = (33, 37, 41)
    muted = (108, 117, 125)
    faint = (222, 226, 230)
    grid_thin = (173, 181, 189)
    given_fill = (233, 236, 239)
    answer = (16, 72, 140)  # digits / path of the model's answer
    confident = (86, 180, 233)  # sky blue: fill at full confidence
    changed = (230, 159, 0)  # orange: changed this cycle
    error = (213, 94, 0)  # vermillion: wrong
    good = (0, 158, 115)  # bluish green: solved / start
    goal = (204, 121, 167)  # reddish purple: goal
    wall = (52, 58, 64)
    halt = (213, 94, 0)
    cont = (0, 114, 178)


def blend(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    """Colour ``t`` of the way from ``a`` to ``b`` (t clipped to [0, 1])."""
    t = min(max(float(t), 0.0), 1.0)
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


class Fonts:
    """pygame's bundled default font at a few sizes (no system font lookup: same on every host)."""

    def __init__(self, pygame: ModuleType, scale: float) -> None:
        pygame.font.init()
        self._pygame = pygame
        self._scale = scale
        self._cache: dict[tuple[int, bool], Any] = {}

    def get(self, size: float, bold: bool = False) -> Any:
        px = max(6, round(size * self._scale))
        key = (px, bold)
        if key not in self._cache:
            font = self._pygame.font.Font(None, px)
            font.set_bold(bold)
            self._cache[key] = font
        return self._cache[key]


class Viewer:
    """Draws snapshots of a reasoning episode, to a window or to arrays.

    Args:
        task: the task name, which picks the board painter.
        render_mode: ``"human"`` (a window) or ``"rgb_array"`` (arrays, no display needed).
        fps: frames per second in human mode.
        options: what to show; defaults to ``ViewerOptions()``.
    """

    BOARD = 540  # board side at scale 1, pixels
    MARGIN = 30
    PANEL = 330

    def __init__(
        self,
        task: str,
        render_mode: str = "rgb_array",
        fps: float = 4,
        options: ViewerOptions | None = None,
    ) -> None:
        if render_mode not in ("human", "rgb_array"):
            raise ValueError(f"render_mode must be 'human' or 'rgb_array', got {render_mode!r}")
        self.task = task
        self.render_mode = render_mode
        self.fps = fps
        self.options = options or ViewerOptions()
        s = self.options.scale
        self.size = (
            round((self.BOARD + 2 * self.MARGIN + self.PANEL) * s),
            round((self.BOARD + 2 * self.MARGIN) * s),
        )
        self.user_closed = False
        self._pygame: ModuleType | None = None
        self._canvas: Any = None
        self._window: Any = None
        self._clock: Any = None
        self._fonts: Fonts | None = None

    def _setup(self) -> ModuleType:
        if self._pygame is None:
            self._pygame = import_pygame()
            self._fonts = Fonts(self._pygame, self.options.scale)
            self._canvas = self._pygame.Surface(self.size)
        return self._pygame

    def draw(self, snap: Snapshot) -> Any:
        """Paint ``snap`` on the off-screen canvas and return it (a ``pygame.Surface``)."""
        pygame = self._setup()
        from hrm_env.render import maze, panel, sudoku

        s = self.options.scale
        canvas = self._canvas
        canvas.fill(Palette.background)
        board = pygame.Rect(
            round(self.MARGIN * s),
            round(self.MARGIN * s),
            round(self.BOARD * s),
            round(self.BOARD * s),
        )
        painter = maze if snap.task == "maze" else sudoku
        assert self._fonts is not None
        painter.draw_board(pygame, canvas, board, snap, self.options, self._fonts)
        left = board.right + round(self.MARGIN * s)
        side = pygame.Rect(
            left, board.top, self.size[0] - left - round(self.MARGIN * s / 2), board.height
        )
        panel.draw_panel(pygame, canvas, side, snap, self.options, self._fonts)
        return canvas

    def render(self, snap: Snapshot) -> np.ndarray | None:
        """Draw ``snap``: returns an (H, W, 3) uint8 frame in rgb_array mode, else shows it."""
        canvas = self.draw(snap)
        pygame = self._pygame
        assert pygame is not None
        if self.render_mode == "rgb_array":
            return frame_of(pygame, canvas)
        if self.user_closed:
            return None
        if self._window is None:
            pygame.display.init()
            pygame.display.set_caption(f"HRM - {snap.task}")
            self._window = pygame.display.set_mode(self.size)
            self._clock = pygame.time.Clock()
        # Handle the window's close button ourselves; leave other events (keys) in the queue
        # for whoever drives the episode.
        pygame.event.pump()
        if pygame.event.get(pygame.QUIT):
            self.user_closed = True
            self.close()
            return None
        self._window.blit(canvas, (0, 0))
        pygame.display.flip()
        self._clock.tick(self.fps)
        return None

    def close(self) -> None:
        """Close the window (if one is open). Safe to call repeatedly."""
        if self._window is not None and self._pygame is not None:
            self._pygame.display.quit()
        self._window = None
        self._clock = None


def frame_of(pygame: ModuleType, surface: Any) -> np.ndarray:
    """(H, W, 3) uint8 copy of a surface's pixels (pygame stores them column-major)."""
    return np.ascontiguousarray(np.transpose(pygame.surfarray.pixels3d(surface), (1, 0, 2)))
