"""The HRM as an environment reasoner: numpy in, numpy out, one high-level cycle per call.

:class:`TorchReasoner` implements ``hrm_env.envs.reasoner.Reasoner``: the environments stay
torch-free and drive the model through ``reset`` (embed puzzles, fresh carry) and ``cycle``
(one high-level cycle = T low-level updates + one high-level update, then the readout). All
model work runs under ``torch.inference_mode`` on the model's device, in bf16 autocast on
CUDA (the model enters it itself); results come back as float32 numpy arrays.

:func:`load_pretrained` wraps a shipped checkpoint (``hrm_agent/checkpoints/<task>.*``, package
data, no network) or one given by path.

Shapes: B batch (sub-environments), S cells, L = 1 + S positions, D hidden, V vocabulary.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path

import numpy as np
import torch

from hrm_agent.checkpoint import checkpoint_paths, load_checkpoint
from hrm_agent.devices import resolve_device
from hrm_agent.model import HRM, Carry, Outputs
from hrm_agent.sampling import DEFAULT_DIVERSITY, Diversity, TrajectoryNoise
from hrm_env.envs.reasoner import CycleOutput

__all__ = ["CycleOutput", "TorchReasoner", "TorchState", "load_model", "load_pretrained"]


@dataclass(frozen=True)
class TorchState:
    """Opaque per-batch state of a :class:`TorchReasoner` (the envs only pass it back).

    Attributes:
        carry: the model's recurrent state, (B, L, D) float32 tensors on the model's device.
        x: (B, L, D) embedded puzzles (the input injection), cached across cycles.
        inputs: (B, S) uint8 puzzles.
        cycles: (B,) int64 high-level cycles run since each row's reset.
        noise: the rows' trajectory noise (``hrm_agent.sampling``), None without diversity.
    """

    carry: Carry
    x: torch.Tensor
    inputs: np.ndarray
    cycles: np.ndarray
    noise: TrajectoryNoise | None = None


def _task_names() -> tuple[str, ...]:
    from hrm_env.puzzles.tasks import TASK_NAMES

    return TASK_NAMES


def _check_task(task: str) -> None:
    names = _task_names()
    if task not in names:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(names)}")


class TorchReasoner:
    """Drive an :class:`~hrm_agent.model.HRM` one high-level cycle at a time for the envs.

    Args:
        model: the network (its config gives ``seq_len``, ``vocab_size``, ``latent_size``).
        task: the task it solves (``"sudoku"``, ``"sudoku-mini"``, ``"maze"``).
        device: where to run (``"auto"``, ``"cpu"``, ``"cuda:1"``, ...); None keeps the model
            where it is, otherwise it is moved there.

    Raises:
        ValueError: for an unknown task, a model of other puzzle sizes, or a device this torch
            build cannot run on.

    Example:
        >>> from hrm_agent import HRM, HRMConfig
        >>> reasoner = TorchReasoner(HRM(HRMConfig.preset("tiny")), "sudoku")
        >>> state = reasoner.reset(np.zeros((2, 81), dtype=np.uint8))
        >>> state, out = reasoner.cycle(state)
        >>> out.logits.shape, out.q.shape, out.latent.shape
        ((2, 81, 10), (2, 2), (2, 32))
    """

    def __init__(self, model: HRM, task: str, device: torch.device | str | None = None) -> None:
        _check_task(task)
        from hrm_env.puzzles.tasks import get_task

        spec = get_task(task)
        if (model.config.seq_len, model.config.vocab_size) != (spec.seq_len, spec.vocab_size):
            raise ValueError(
                f"model has seq_len={model.config.seq_len}, vocab_size="
                f"{model.config.vocab_size} but task {task!r} needs seq_len={spec.seq_len}, "
                f"vocab_size={spec.vocab_size}"
            )
        if device is not None:
            model = model.to(resolve_device(device))
        # Not switched to eval(): the HRM has no dropout or batch statistics, and a model that
        # is also being trained keeps its mode.
        self.model = model
        self.task = task
        self.seq_len = model.config.seq_len
        self.vocab_size = model.config.vocab_size
        self.latent_size = model.config.hidden_size

    #: ``reset`` takes ``diversity``/``seed``/``clean``: rows can be diverse trajectories.
    supports_diversity = True

    @property
    def device(self) -> torch.device:
        """Device the model runs on."""
        return self.model.device

    def _check_inputs(self, inputs: np.ndarray) -> np.ndarray:
        inputs = np.asarray(inputs)
        if inputs.ndim != 2 or inputs.shape[1] != self.seq_len:
            raise ValueError(
                f"inputs must have shape (B, {self.seq_len}) for this {self.task!r} model, "
                f"got {inputs.shape}"
            )
        if inputs.shape[0] < 1:
            raise ValueError("inputs must hold at least one puzzle")
        if not np.issubdtype(inputs.dtype, np.integer):
            raise ValueError(f"inputs must be integer tokens, got dtype {inputs.dtype}")
        low, high = int(inputs.min()), int(inputs.max())
        if low < 0 or high >= self.vocab_size:
            raise ValueError(
                f"input tokens must lie in [0, {self.vocab_size}), got values in [{low}, {high}]"
            )
        return inputs.astype(np.uint8)

    def _embed(self, inputs: np.ndarray) -> torch.Tensor:
        tokens = torch.from_numpy(inputs.astype(np.int64)).to(self.device)
        return self.model.embed(tokens)

    def reset(
        self,
        inputs: np.ndarray,
        state: TorchState | None = None,
        mask: np.ndarray | None = None,
        *,
        diversity: Diversity | Mapping[str, float] | None = None,
        seed: int = 0,
        clean: np.ndarray | None = None,
    ) -> TorchState:
        """Fresh state for (B, S) ``inputs``; with ``state`` and ``mask`` only masked rows.

        Args:
            inputs: the puzzles.
            state, mask: a state to reset in the masked rows only (their noise, if any, is
                kept: the masked rows get a fresh noisy start from it).
            diversity: make the rows diverse trajectories (``hrm_agent.sampling``): a
                ``Diversity`` or its fields as a dict (``{}``: the default source); None runs
                the plain model. Only on a full reset.
            seed: seed of the noise.
            clean: (B,) bool, rows that run without noise (default: none).

        Raises:
            ValueError: for inputs of the wrong shape, dtype or token range, a mask that
                does not fit the state, or bad diversity fields.
        """
        inputs = self._check_inputs(inputs)
        B = inputs.shape[0]
        with torch.inference_mode():
            if state is None or mask is None:
                noise = self._noise(diversity, seed, clean, B)
                carry = self.model.initial_carry(B, self.device)
                return TorchState(
                    carry=carry if noise is None else noise.initial(carry),
                    x=self._embed(inputs),
                    inputs=inputs,
                    cycles=np.zeros(B, dtype=np.int64),
                    noise=noise,
                )
            mask = np.asarray(mask)
            if mask.dtype != bool or mask.shape != (len(state.inputs),):
                raise ValueError(
                    f"mask must be a ({len(state.inputs)},) bool array, "
                    f"got dtype {mask.dtype} shape {mask.shape}"
                )
            if B != len(state.inputs):
                raise ValueError(f"inputs must have {len(state.inputs)} rows, got {B}")
            if not mask.any():
                return state
            rows = torch.from_numpy(mask).to(self.device)
            x = torch.where(rows.view(B, 1, 1), self._embed(inputs), state.x)
            carry = self.model.reset_carry(state.carry, rows)
            if state.noise is not None:
                carry = _where_rows(rows, state.noise.initial(carry), carry)
            return TorchState(
                carry=carry,
                x=x,
                inputs=np.where(mask[:, None], inputs, state.inputs),
                cycles=np.where(mask, 0, state.cycles),
                noise=state.noise,
            )

    def _noise(
        self,
        diversity: Diversity | Mapping[str, float] | None,
        seed: int,
        clean: np.ndarray | None,
        rows: int,
    ) -> TrajectoryNoise | None:
        if diversity is None:
            return None
        if not isinstance(diversity, Diversity):
            diversity = Diversity(**diversity) if diversity else DEFAULT_DIVERSITY
        if diversity.views:
            raise ValueError(
                "views are for hrm eval and solve (hrm_agent.sampling); the reasoner's rows "
                "take noise sources only"
            )
        if not diversity.noisy:
            return None
        clean = np.zeros(rows, dtype=bool) if clean is None else np.asarray(clean, dtype=bool)
        if clean.shape != (rows,):
            raise ValueError(f"clean must be a ({rows},) bool array, got shape {clean.shape}")
        noisy = torch.from_numpy(~clean).to(self.device)
        generator = torch.Generator(device=self.device).manual_seed(int(seed))
        return TrajectoryNoise(diversity, noisy, generator)

    def _advance(
        self, carry: Carry, x: torch.Tensor, tokens: torch.Tensor | None
    ) -> tuple[Carry, Outputs]:
        """One env step of the model: a cycle and its readout; subclasses may observe it
        (see ``hrm_agent.analysis.TracingReasoner``). ``tokens``: the puzzles, for a model
        with an output mask or walls (else None)."""
        carry = self.model.cycle(carry, x, tokens)
        return carry, self.model.readout(carry, tokens)

    def _tokens(self, inputs: np.ndarray) -> torch.Tensor | None:
        """The puzzles as tokens when the model needs them (an output mask, walls)."""
        if self.model.config.output_choices is None and self.model.wall_table is None:
            return None
        return torch.from_numpy(inputs.astype(np.int64)).to(self.device)

    def cycle(self, state: TorchState) -> tuple[TorchState, CycleOutput]:
        """One high-level cycle for every row, then the readout (logits, Q, pooled z_H)."""
        with torch.inference_mode():
            carry, x = state.carry, state.x
            if state.noise is not None:
                # Rows on their first cycle start from their (noisy) initial state as is.
                started = torch.from_numpy(state.cycles > 0).to(self.device)
                carry = _where_rows(started, state.noise.perturb(carry), carry)
                x = state.noise.inject(x)
            carry, out = self._advance(carry, x, self._tokens(state.inputs))
            latent = carry.z_H[:, 1:].float().mean(dim=1)  # (B, D), cells only
            q = torch.stack((out.q_halt, out.q_continue), dim=1)  # (B, 2)
            result = CycleOutput(
                logits=out.logits.float().cpu().numpy(),
                q=q.float().cpu().numpy(),
                latent=latent.cpu().numpy(),
            )
        return TorchState(carry, state.x, state.inputs, state.cycles + 1, state.noise), result

    def __repr__(self) -> str:
        c = self.model.config
        return (
            f"TorchReasoner(task={self.task!r}, hidden={c.hidden_size}, "
            f"layers={c.h_layers}+{c.l_layers}, T={c.l_cycles}, device={self.device})"
        )


def _where_rows(rows: torch.Tensor, a: Carry, b: Carry) -> Carry:
    """``a`` in the rows where ``rows`` (B,) bool is True, ``b`` elsewhere."""
    m = rows.view(-1, 1, 1)
    return Carry(torch.where(m, a.z_H, b.z_H), torch.where(m, a.z_L, b.z_L))


def shipped_checkpoint(task: str) -> Path:
    """Stem of the checkpoint shipped for ``task`` inside the package (it may not exist)."""
    _check_task(task)
    with as_file(files("hrm_agent") / "checkpoints") as folder:
        return Path(folder) / task


def load_pretrained(
    task: str,
    device: torch.device | str | None = "cpu",
    checkpoint: str | os.PathLike[str] | None = None,
) -> TorchReasoner:
    """The shipped (or a given) checkpoint for ``task`` as a ready :class:`TorchReasoner`.

    Args:
        task: ``"sudoku"``, ``"sudoku-mini"`` or ``"maze"``.
        device: where to run the model: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``,
            ``"mps"`` (None: the CPU).
        checkpoint: a checkpoint stem (or its ``.json``/``.safetensors`` path) to use instead
            of the shipped one.

    Raises:
        FileNotFoundError: when no checkpoint exists there (the message names the path and
            the ``hrm train`` command that makes one).
        ValueError: for an unknown task, a device this torch build cannot run on, a corrupt
            checkpoint, or one trained for another task or with other puzzle sizes.
    """
    model, _ = load_model(task, checkpoint, device or "cpu")
    return TorchReasoner(model, task, device=None)


def load_model(
    task: str,
    checkpoint: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
) -> tuple[HRM, dict]:
    """Load the shipped (or a given) checkpoint for ``task`` and check it belongs to it.

    The one loader behind :func:`load_pretrained`, ``hrm eval`` and :func:`hrm_agent.solve`.

    Returns:
        ``(model, meta)``: the model in eval mode on ``device``, and its checkpoint's meta.

    Raises:
        FileNotFoundError: when no checkpoint exists there (the message names the path and
            the ``hrm train`` command that makes one).
        ValueError: for an unknown task, a device this torch build cannot run on (see
            :func:`hrm_agent.devices.resolve_device`), a corrupt checkpoint, or one trained for
            another task.
    """
    _check_task(task)
    # Checked up front: torch accepts "cuda" on a CPU-only build and fails only inside the
    # model's move, with a bare AssertionError.
    device = resolve_device(device)
    stem = Path(checkpoint) if checkpoint is not None else shipped_checkpoint(task)
    weights, config_json = checkpoint_paths(stem)
    for path in (config_json, weights):
        if not path.is_file():
            where = "given" if checkpoint is not None else "shipped"
            raise FileNotFoundError(
                f"no {where} checkpoint for task {task!r}: {path} not found (it does not "
                f"exist). Train one with `hrm train {task}` and pass its stem (--checkpoint, "
                f"or checkpoint=<stem> in Python)"
                + ("" if checkpoint is not None else f", or place it at {stem}.*")
            )
    model, _, meta = load_checkpoint(stem, map_location=device)
    trained_for = meta.get("task")
    if trained_for is not None and trained_for != task:
        raise ValueError(f"checkpoint {stem} was trained for task {trained_for!r}, not {task!r}")
    model.eval()
    return model, meta
