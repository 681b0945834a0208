"""How a run stops early: signals that ask for a save, and the two ways a run ends unfinished.

Owns :class:`StopSignals` (SIGINT/SIGTERM ask the loop to stop after the step in flight),
:class:`TrainingInterrupted` (raised after that save) and :class:`TrainingDiverged` (a
non-finite loss, raised before the step touches the weights). Must not save, log or train.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["StopSignals", "TrainingDiverged", "TrainingInterrupted"]


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite; nothing of the failed step was saved."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped :meth:`Trainer.fit` after a step; the state was saved."""

    def __init__(self, signum: int, step: int, out_dir: Path) -> None:
        self.signum = signum
        self.step = step
        self.out_dir = out_dir
        name = signal.Signals(signum).name
        super().__init__(
            f"interrupted by {name} after step {step}; state saved in {out_dir}, "
            f"`--resume` continues from step {step}"
        )

    @property
    def exit_code(self) -> int:
        """The shell convention, 128 + signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


class StopSignals:
    """While alive, SIGINT and SIGTERM only ask the loop to stop after the current step.

    A second signal of either kind stops at once (KeyboardInterrupt), for a user who does not
    want to wait. Installed only in the main thread (Python allows no handlers elsewhere).
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        print(
            f"hrm train: {signal.Signals(signum).name} received; saving after the step in "
            "flight (signal again to stop at once, losing it)",
            file=sys.stderr,
            flush=True,
        )

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
