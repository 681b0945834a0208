"""``hrm watch``: play episodes of the model halting by its own Q head, live or to a file.

With a display, a pygame window plays the episodes (space pauses, n skips to the next puzzle,
t shows or hides the forward residuals of z_H and z_L in the side panel, q or Esc quits). With ``save=FILE.gif|.mp4``, or where there is no display (no ``DISPLAY`` on
Linux, or ``SDL_VIDEODRIVER=dummy``), the frames are written to an animation instead.

Shapes: H, W frame height and width in pixels.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hrm_env.envs.reasoner import model_cycle_limit
from hrm_env.envs.reasoning import CONTINUE, HALT, ReasoningEnv, load_reasoner
from hrm_env.fileio import atomic_path, check_writable

__all__ = ["watch", "has_display", "write_animation", "q_head_action"]

DEFAULT_FPS = 4.0
HOLD_SECONDS = 1.5  # how long the committed answer stays on screen before the next puzzle
FORMATS = (".gif", ".mp4")


def has_display() -> bool:
    """Whether a window can be opened (False under SDL's dummy driver or X-less Linux)."""
    if os.environ.get("SDL_VIDEODRIVER", "").lower() in ("dummy", "offscreen"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def q_head_action(obs: dict[str, np.ndarray]) -> int:
    """The model's own halting rule (ACT at inference): halt once q_halt > q_continue."""
    q_halt, q_continue = obs["q"]
    return HALT if q_halt > q_continue else CONTINUE


def check_save_path(path: str | os.PathLike[str]) -> Path:
    """Validate an animation path: a known suffix whose writer is installed, and a place
    that can be written (checked before an episode is played, not after).

    Raises:
        ValueError: for a suffix other than .gif or .mp4.
        ImportError: when the writer for the suffix is not installed (with the pip command).
        WriteError: when the path cannot be written (a folder, a read-only folder, ...).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot write {path.name!r}: the animation must end in .gif or .mp4")
    if suffix == ".gif":
        try:
            import PIL  # noqa: F401
        except ImportError as err:
            raise ImportError("writing a GIF needs Pillow: pip install pillow") from err
    elif _mp4_backend() is None:
        raise ImportError(
            "writing an MP4 needs imageio with its ffmpeg plugin or moviepy: "
            "pip install imageio imageio-ffmpeg (or save a .gif)"
        )
    return check_writable(path)


def _mp4_backend() -> str | None:
    try:
        import imageio  # noqa: F401
        import imageio_ffmpeg  # noqa: F401

        return "imageio"
    except ImportError:
        pass
    try:
        import moviepy  # noqa: F401

        return "moviepy"
    except ImportError:
        return None


def write_animation(
    path: str | os.PathLike[str], frames: Sequence[np.ndarray], durations_ms: Sequence[int]
) -> Path:
    """Write (H, W, 3) uint8 ``frames``, each shown for its duration, as a GIF or MP4.

    The file appears whole or not at all (:mod:`hrm_env.fileio`): a failed or interrupted
    write leaves no half-written animation, and an older file at ``path`` stays as it was.

    Raises:
        ValueError: a suffix other than .gif or .mp4, or no frames (or not one per duration).
        ImportError: no writer installed for the suffix.
        WriteError: the path cannot be written, found up front, or the write failed (a full
            disk).
    """
    path = check_save_path(path)
    if not frames or len(frames) != len(durations_ms):
        raise ValueError("need at least one frame and one duration per frame")
    with atomic_path(path) as tmp:
        _encode(tmp, path.suffix.lower(), frames, durations_ms)
    return path


def _encode(
    path: Path, suffix: str, frames: Sequence[np.ndarray], durations_ms: Sequence[int]
) -> None:
    """Encode the frames into ``path`` (a temporary name) in the format of ``suffix``."""
    if suffix == ".gif":
        from PIL import Image

        # One adaptive palette per frame keeps the confidence shading smooth.
        images = [
            Image.fromarray(f).quantize(colors=256, method=Image.Quantize.MEDIANCUT) for f in frames
        ]
        images[0].save(
            path,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=[int(d) for d in durations_ms],
            loop=0,
            disposal=1,
        )
        return
    # Video has a fixed frame rate: repeat frames to approximate each duration.
    base = min(durations_ms)
    fps = 1000.0 / base
    expanded = [
        f for f, d in zip(frames, durations_ms, strict=True) for _ in range(max(1, round(d / base)))
    ]
    if _mp4_backend() == "imageio":
        import imageio.v2 as imageio

        # Even sides for yuv420p; macro_block_size=1 stops imageio from resizing.
        h, w = expanded[0].shape[:2]
        even = [f[: h - h % 2, : w - w % 2] for f in expanded]
        imageio.mimwrite(path, even, fps=fps, codec="libx264", macro_block_size=1, quality=8)
    else:
        from moviepy import ImageSequenceClip

        ImageSequenceClip(list(expanded), fps=fps).write_videofile(
            os.fspath(path), codec="libx264", logger=None
        )


def _tracing(reasoner: Any) -> Any:
    """A tracing twin of a PyTorch reasoner (same model), or None for any other reasoner."""
    try:
        from hrm_agent.analysis import TracingReasoner
        from hrm_agent.reasoner import TorchReasoner
    except ImportError:
        return None
    return TracingReasoner.wrap(reasoner) if isinstance(reasoner, TorchReasoner) else None


class _Window:
    """A pygame window showing frames, with the watch keys."""

    def __init__(self, size: tuple[int, int], title: str, residuals: bool) -> None:
        from hrm_env.render.viewer import import_pygame

        self.pygame = import_pygame()
        self.pygame.display.init()
        self.pygame.display.set_caption(title)
        self.screen = self.pygame.display.set_mode(size)
        self.paused = False
        self.residuals = residuals

    def show(self, frame: np.ndarray, seconds: float) -> str | None:
        """Show ``frame`` for ``seconds`` (longer while paused); "quit", "next" or None."""
        pg = self.pygame
        surface = pg.surfarray.make_surface(np.ascontiguousarray(frame.transpose(1, 0, 2)))
        self.screen.blit(surface, (0, 0))
        pg.display.flip()
        deadline = time.monotonic() + seconds
        while self.paused or time.monotonic() < deadline:
            for event in pg.event.get():
                if event.type == pg.QUIT:
                    return "quit"
                if event.type == pg.KEYDOWN:
                    if event.key in (pg.K_q, pg.K_ESCAPE):
                        return "quit"
                    if event.key == pg.K_n:
                        self.paused = False
                        return "next"
                    if event.key == pg.K_SPACE:
                        self.paused = not self.paused
                    if event.key == pg.K_t:
                        self.residuals = not self.residuals
            time.sleep(0.01)
        return None

    def close(self) -> None:
        self.pygame.display.quit()


def watch(
    task: str,
    difficulty: str | None = None,
    seed: int | None = None,
    save: str | os.PathLike[str] | None = None,
    episodes: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    fps: float = DEFAULT_FPS,
    *,
    reasoner: Any = None,
    max_cycles: int | None = None,
    residuals: bool = False,
    samples: int = 1,
    diversity: dict[str, float] | None = None,
) -> int:
    """Play episodes with the model's own Q-head halting, in a window or into an animation.

    Args:
        task: ``"sudoku"``, ``"sudoku-mini"`` or ``"maze"``.
        difficulty: puzzle tier (default: the envs' default,
            :data:`hrm_env.envs.defaults.DEFAULT_TIERS`).
        seed: seed of the first puzzle draw (later puzzles follow from it).
        save: write the animation to this .gif or .mp4 instead of opening a window.
        episodes: puzzles to play; default 1 when saving, until quit in a window.
        checkpoint: checkpoint stem to load instead of the shipped model.
        device: torch device of the model.
        fps: frames (cycles) per second.
        reasoner: a reasoner to drive instead of loading a checkpoint (tests, custom models).
        max_cycles: cycle limit per puzzle (default: the model's own, N x max_segments,
            or 16 for a reasoner that does not say).
        residuals: start with the residual traces of z_H and z_L shown (key t toggles them in
            a window); needs a PyTorch model (the traces come from ``hrm_agent.analysis``).
        samples: trajectories per puzzle (``ReasoningEnv``'s option): the one shown after each
            cycle is the one whose Q head is most sure (its index is the panel's
            ``trajectory`` trace).
        diversity: their noise (``ReasoningEnv``'s option).

    Returns:
        0 on success (the process exit code of ``hrm watch``).

    Raises:
        ValueError: bad task, difficulty, fps, episodes or save suffix.
        ImportError: no writer installed for the requested animation format.
        FileNotFoundError: missing checkpoint.
    """
    if not fps or fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if episodes is not None and episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if save is not None:
        save = check_save_path(save)
    interactive = save is None and has_display()
    if save is None and not interactive:
        save = check_save_path(f"hrm-{task}.gif")
        print(f"no display found: writing the animation to {save} instead of opening a window")
    if episodes is None and not interactive:
        episodes = 1

    if reasoner is None:
        reasoner = load_reasoner(task, checkpoint, device)
    if max_cycles is None:
        max_cycles = model_cycle_limit(reasoner)
    tracer = _tracing(reasoner)
    env = ReasoningEnv(
        task,
        reasoner=tracer or reasoner,
        render_mode="rgb_array",
        difficulty=difficulty,
        max_cycles=max_cycles,
        samples=samples,
        diversity=diversity,
    )
    history: dict[str, list[float]] = {}

    def record(show: bool) -> None:
        # One value per cycle, kept whether shown or not, so that toggling on mid-episode shows
        # the whole episode so far; shown series are linked into env.traces (cleared on reset).
        if tracer is None:
            return
        for name, value in tracer.panel_values().items():
            history.setdefault(name, []).append(value)
        for name, values in history.items():
            if show:
                env.traces[name] = values
            else:
                env.traces.pop(name, None)

    frame_ms = round(1000.0 / fps)
    frames: list[np.ndarray] = []
    durations: list[int] = []
    window: _Window | None = None
    try:
        episode = 0
        while episodes is None or episode < episodes:
            obs, info = env.reset(seed=seed if episode == 0 else None)
            history.clear()
            record(residuals if window is None else window.residuals)
            frame = env.render()
            assert frame is not None
            if interactive and window is None:
                window = _Window((frame.shape[1], frame.shape[0]), f"hrm watch {task}", residuals)
            outcome: str | None = None
            terminated = truncated = False
            while True:
                hold = HOLD_SECONDS if terminated or truncated else 1.0 / fps
                if window is not None:
                    outcome = window.show(frame, hold)
                    if outcome is not None:
                        break
                else:
                    frames.append(frame)
                    durations.append(round(hold * 1000) if terminated or truncated else frame_ms)
                if terminated or truncated:
                    break
                obs, reward, terminated, truncated, info = env.step(q_head_action(obs))
                record(residuals if window is None else window.residuals)
                frame = env.render()
                assert frame is not None
            episode += 1
            how = "by its Q head" if q_head_action(obs) == HALT else "at the cycle limit"
            verdict = "solved" if info["solved"] else "wrong"
            print(
                f"puzzle {episode}: {verdict} after {info['cycles']} cycles, halted {how} "
                f"(cell accuracy {info['cell_accuracy']:.3f})"
            )
            if outcome == "quit":
                break
    finally:
        env.close()
        if window is not None:
            window.close()
    if save is not None:
        path = write_animation(save, frames, durations)
        print(f"wrote {len(frames)} frames to {path}")
    return 0
