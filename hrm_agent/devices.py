"""Turn a user's device string (``--device``, ``device=``) into a torch device, or say why not.

``torch.device("cuda")`` accepts the name even on a CPU-only torch build; the failure comes
later, deep inside the first tensor move, as ``AssertionError: Torch not compiled with CUDA
enabled``. :func:`resolve_device` checks up front and raises a one-line ``ValueError`` that
names the device and what this torch build offers, which ``hrm``'s commands print without a
traceback.

>>> resolve_device("cpu")
device(type='cpu')
"""

from __future__ import annotations

import torch

from hrm_env.envs.reasoner import DEFAULT_INFERENCE_THREADS, check_threads

__all__ = [
    "DEFAULT_INFERENCE_THREADS",
    "DEVICE_CHOICES",
    "available_devices",
    "check_batch_size",
    "default_batch_size",
    "resolve_device",
    "set_inference_threads",
]

# torch's own thread count (a thread per physical core), read before anything here changes
# it, so that a setting of 0 can go back to it.
_TORCH_DEFAULT_THREADS = torch.get_num_threads()

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"
"""The device strings :func:`resolve_device` accepts, as a user is told them."""

CPU_ROWS_PER_PASS = 16
"""Rows (puzzles times trajectories) per forward pass on a CPU when none is asked for. On one
thread the cost of a row is about flat from 8 to 32 rows (64 for a maze) and grows past it, as
the batch's activations outgrow the cache: ``benchmarks/bench_batch.py`` measured 1.4x a row
at 256 Sudoku rows and 2.3x at 512, 2.1x at 256 maze rows."""
ACCELERATOR_PUZZLES_PER_PASS = 256
"""Puzzles per forward pass on a GPU when none is asked for (a wide batch keeps it busy)."""


def check_batch_size(batch_size: object) -> int | None:
    """``batch_size`` as given (None: the caller picks :func:`default_batch_size`), else a
    ``ValueError`` naming it: it must be an integer >= 1."""
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return batch_size


def default_batch_size(device: torch.device | str, samples: int = 1) -> int:
    """Puzzles per forward pass when the caller gives none: on a CPU as many as keep
    ``CPU_ROWS_PER_PASS`` rows with ``samples`` trajectories each (at least one), elsewhere
    ``ACCELERATOR_PUZZLES_PER_PASS``."""
    if torch.device(device).type == "cpu":
        return max(1, CPU_ROWS_PER_PASS // max(1, int(samples)))
    return ACCELERATOR_PUZZLES_PER_PASS


def _cuda_count() -> int:
    """CUDA devices this process can use (0 without a CUDA build or without a GPU)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    return torch.backends.mps.is_available()


def available_devices() -> list[str]:
    """The devices this torch build can run on here: ``cpu``, then ``cuda:N``, ``mps``."""
    devices = ["cpu"] + [f"cuda:{i}" for i in range(_cuda_count())]
    return devices + (["mps"] if _mps_available() else [])


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device for ``name``, checked against what this torch build offers here.

    Args:
        name: ``"auto"`` (the first CUDA GPU if there is one, else the CPU), ``"cpu"``,
            ``"cuda"``, ``"cuda:N"``, ``"mps"``, or a ``torch.device``.

    Returns:
        The device; ``"cuda"`` stays index-free (torch's current CUDA device).

    Raises:
        ValueError: one line naming the device and the devices available: an unknown device
            string, CUDA or MPS not available in this build or on this machine, or a CUDA
            index out of range.
    """
    if isinstance(name, str) and name.strip().lower() == "auto":
        return torch.device("cuda" if _cuda_count() else "cpu")
    offered = f"available here: {', '.join(available_devices())}"
    try:
        device = torch.device(name.strip() if isinstance(name, str) else name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r}; use {DEVICE_CHOICES} ({offered})") from None
    label = f"device {str(device)!r}"
    build = f"this torch build ({torch.__version__})"
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = _cuda_count()
        if count == 0:
            # A CPU-only build, or a GPU build (CUDA or ROCm, both "cuda" to torch) on a
            # machine whose GPU it cannot see: the fix differs, so the message does.
            gpu_build = torch.version.cuda is not None or torch.version.hip is not None
            why = f"{build} finds no CUDA GPU" if gpu_build else f"CUDA is not available in {build}"
            raise ValueError(f"{label}: {why}; {offered}")
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"{label}: no such CUDA device, {build} sees {count} "
                f"(cuda:0..cuda:{count - 1}); {offered}"
            )
        return device
    if device.type == "mps":
        if not _mps_available():
            raise ValueError(f"{label}: MPS is not available to {build} on this machine; {offered}")
        return device
    # torch knows more device types (meta, xpu, ...) that no part of hrm is built or tested
    # for; refusing them here beats a confusing failure inside the model.
    raise ValueError(f"unsupported {label}; use {DEVICE_CHOICES} ({offered})")


def set_inference_threads(
    threads: int | None, device: torch.device | str = "cpu", name: str = "threads"
) -> None:
    """Set torch's CPU threads for inference on ``device`` (process-wide).

    Args:
        threads: an integer >= 1, 0 for torch's own default (a thread per core), or None to
            leave torch's setting as it is.
        device: where the model runs; only a CPU model is affected (a GPU runs the cycle).
        name: the argument's name for the error message (``"--threads"``).

    Raises:
        ValueError: ``threads`` is negative or not an integer (the message names ``name``).
    """
    threads = check_threads(threads, name)
    if threads is None or torch.device(device).type != "cpu":
        return
    torch.set_num_threads(threads or _TORCH_DEFAULT_THREADS)
