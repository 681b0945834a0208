"""Shared by every test: headless SDL, hypothesis profiles, the ``tiny_reasoner`` fixture."""

from __future__ import annotations

import errno
import os

# Headless rendering: no window ever opens, on CI or a laptop.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests draw fresh examples on every local run (and remember failures); CI sets
# HYPOTHESIS_PROFILE=ci so that a clean clone always checks the same examples and a red run
# can be reproduced exactly.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def make_tiny_reasoner(task: str, seed: int = 0) -> Any:
    """A random-init ``tiny`` HRM behind the real TorchReasoner (skips if torch is missing)."""
    torch = pytest.importorskip("torch")
    from hrm_agent.config import HRMConfig
    from hrm_agent.model import HRM
    from hrm_agent.reasoner import TorchReasoner
    from hrm_env.puzzles.tasks import get_task

    # One intra-op thread: these models are tiny, and on a busy shared CPU torch's thread pool
    # spins against other processes and makes a 2 ms cycle take most of a second.
    torch.set_num_threads(1)
    spec = get_task(task)
    config = HRMConfig.preset("tiny", seq_len=spec.seq_len, vocab_size=spec.vocab_size)
    model = HRM(config, generator=torch.Generator().manual_seed(seed))
    return TorchReasoner(model, task, device="cpu")


@pytest.fixture
def tiny_reasoner():
    """Factory fixture: ``tiny_reasoner(task)``."""
    return make_tiny_reasoner


def solve_cycle_script(puzzles: Any, solve_at: Any, halt_after: int = 1) -> tuple[Any, Any]:
    """``answers`` and ``q`` scripts for a ``ScriptedReasoner``: puzzle i of ``puzzles`` is
    answered correctly from cycle ``solve_at[i]`` on, and its Q head says halt from cycle
    ``solve_at[i] + halt_after`` on. The scripts key on the puzzle, so rows may come in any
    order (the puzzles must be distinct)."""
    when = {row.tobytes(): s for row, s in zip(puzzles.inputs, solve_at, strict=True)}
    solution = {row.tobytes(): t for row, t in zip(puzzles.inputs, puzzles.targets, strict=True)}

    def answers(inputs: np.ndarray, cycles: np.ndarray) -> np.ndarray:
        s = np.array([when[row.tobytes()] for row in inputs])
        targets = np.stack([solution[row.tobytes()] for row in inputs])
        return np.where((cycles >= s)[:, None], targets, inputs)

    def q(inputs: np.ndarray, cycles: np.ndarray) -> np.ndarray:
        s = np.array([when[row.tobytes()] for row in inputs])
        halt = np.where(cycles >= s + halt_after, 1.0, -1.0)
        return np.stack([halt, np.zeros_like(halt)], axis=1)

    return answers, q


@pytest.fixture(scope="session")
def solve_script():
    """Factory fixture: ``solve_script(puzzles, solve_at, halt_after=1) -> (answers, q)``."""
    return solve_cycle_script


class WriteFaults:
    """Simulated write failures, for tests of what a failed write leaves behind.

    They patch the system calls (``os.open``, ``os.mkdir``, ``os.replace``, ``os.fsync``,
    ``os.write``) rather than ``chmod`` a folder, so they hold when the tests run as root,
    whom permission bits do not stop.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def read_only(self, folder: Any, code: int = errno.EROFS) -> None:
        """Nothing can be created in ``folder`` or below it, nor renamed into it."""
        folder = os.path.abspath(folder)
        real_open, real_mkdir, real_replace = os.open, os.mkdir, os.replace

        def inside(path: Any) -> bool:
            parent = os.path.dirname(os.path.abspath(os.fspath(path)))
            return parent == folder or parent.startswith(folder + os.sep)

        def refuse(path: Any) -> OSError:
            return OSError(code, os.strerror(code), os.fspath(path))

        def fake_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
                raise refuse(path)
            return real_open(path, flags, mode, dir_fd=dir_fd)

        def fake_mkdir(path: Any, mode: int = 0o777, *, dir_fd: Any = None) -> None:
            if inside(path):
                raise refuse(path)
            real_mkdir(path, mode, dir_fd=dir_fd)

        def fake_replace(src: Any, dst: Any, **kwargs: Any) -> None:
            if inside(dst):
                raise refuse(dst)
            real_replace(src, dst, **kwargs)

        self.monkeypatch.setattr(os, "open", fake_open)
        self.monkeypatch.setattr(os, "mkdir", fake_mkdir)
        self.monkeypatch.setattr(os, "replace", fake_replace)

    def disk_full(self) -> None:
        """Every file write fails as on a full disk, where the data is synced (``os.fsync``,
        which every safe write calls before its rename, and which reports a full disk that
        buffered writes did not); creating an empty file still works, as on a real one."""

        def full(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        self.monkeypatch.setattr(os, "fsync", full)


@pytest.fixture
def write_faults(monkeypatch):
    """``write_faults.read_only(folder)`` / ``write_faults.disk_full()`` (see WriteFaults)."""
    return WriteFaults(monkeypatch)


def folder_contents(folder: Any) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) -> its bytes: a snapshot to compare."""
    root = os.fspath(folder)
    found = {}
    for parent, _, names in os.walk(root):
        for name in names:
            path = os.path.join(parent, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, root)] = f.read()
    return found


@pytest.fixture(scope="session")
def snapshot():
    """``snapshot(folder)``: every file under it -> its bytes (see folder_contents)."""
    return folder_contents
