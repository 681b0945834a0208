"""The Hierarchical Reasoning Model (arXiv 2506.21734) with an explicit recurrent carry.

Two recurrent modules share one sequence of 1 + S positions: a learned prefix position (which
the Q head reads, so halting never has to be read off a puzzle cell) followed by the S cells.

* one **high-level cycle** (:meth:`HRM.cycle`): T low-level updates
  ``z_L <- f_L(z_L, z_H + x)`` (input injection of the embedded puzzle x), then one
  high-level update ``z_H <- f_H(z_H, z_L)``;
* one **segment** (:meth:`HRM.segment`, one ACT step) = N cycles. Gradient mode
  ``one-step`` (the paper's 1-step approximation of the fixed-point gradient): every update but
  the last L and the last H update runs under ``torch.no_grad()``; ``last-cycle``: the whole
  last cycle (its T L-updates and the H update) keeps gradient, earlier cycles do not;
* :meth:`HRM.readout`: LM head on z_H of the cells, Q head (halt, continue) on z_H of the prefix;
* :meth:`HRM.forward` = one segment from a detached carry, then the readout — the unit of
  deep supervision; the returned carry is detached again.

Precision: on CUDA (with ``config.compute_dtype == "bfloat16"``) ``cycle``, ``segment``,
``readout`` and ``forward`` enter ``torch.autocast("cuda", torch.bfloat16)`` themselves, so
callers need not; the norms run in float32 and the carry is always float32. On CPU everything
is float32.

Shapes: B batch, S cells, L = 1 + S positions, D hidden, V vocabulary.
"""

from __future__ import annotations

import contextlib
import math
from typing import NamedTuple

import torch
from torch import nn

from hrm_agent.config import HRMConfig
from hrm_agent.layers import Linear, ReasoningModule, Rotary, trunc_normal_

_ABSENT_LOGIT = -1e4
"""Candidate grid and output mask: the logit of tokens that cannot be an answer (softmax and stablemax both
give them a negligible probability; finite, so no NaN gradients)."""


class Carry(NamedTuple):
    """Recurrent state of a batch of puzzles; both float32 of shape (B, L, D)."""

    z_H: torch.Tensor
    z_L: torch.Tensor

    def detach(self) -> Carry:
        """The same state cut from any autograd graph."""
        return Carry(self.z_H.detach(), self.z_L.detach())


class Outputs(NamedTuple):
    """What the model reads out of a carry; float32."""

    logits: torch.Tensor
    """(B, S, V) token logits per cell."""
    q_halt: torch.Tensor
    """(B,) Q-value logit of halting now."""
    q_continue: torch.Tensor
    """(B,) Q-value logit of running another segment."""
    aux_logits: torch.Tensor | None = None
    """(B, S, C) logits of the auxiliary target (``config.aux_target``), else None."""


def output_table(config: HRMConfig) -> torch.Tensor | None:
    """The output mask as a (V, V) bool table, row v = the tokens a cell whose input is v may
    take; None for a config without one."""
    if config.output_choices is None:
        return None
    allowed = torch.zeros(config.vocab_size, config.vocab_size, dtype=torch.bool)
    for value, choices in enumerate(config.output_choices):
        allowed[value, list(choices)] = True
    return allowed


def wall_table(config: HRMConfig) -> torch.Tensor | None:
    """The walls of the max aggregation or of closed walls as a (V,) bool table (True: a cell
    holding this input token is never read); None for a config with neither."""
    tokens = config.max_aggregation or config.closed_walls
    if tokens is None:
        return None
    walls = torch.zeros(config.vocab_size, dtype=torch.bool)
    walls[list(tokens)] = True
    return walls


class HRM(nn.Module):
    """The HRM network. Build with a config; pass a ``torch.Generator`` for seeded init.

    Example:
        >>> config = HRMConfig.preset("tiny")
        >>> model = HRM(config)
        >>> tokens = torch.zeros(3, config.seq_len, dtype=torch.long)
        >>> carry, out = model(model.initial_carry(3), tokens)
        >>> tuple(out.logits.shape)
        (3, 81, 10)
    """

    def __init__(self, config: HRMConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.candidates = config.mixer == "candidates"
        # Embeddings start at std 1/sqrt(width) and are multiplied by sqrt(width): unit-scale
        # inputs that still get well-scaled gradients (as in the paper's code).
        self.embed_scale = math.sqrt(config.slot_size)
        if self.candidates:
            # One vector per kind of (cell, digit) slot: this digit is given here, another
            # digit is given here, the cell is blank. Shared over digits and cells.
            self.candidate_embedding = nn.Parameter(torch.empty(3, config.slot_size))
            trunc_normal_(self.candidate_embedding, 1.0 / self.embed_scale, generator)
        else:
            self.token_embedding = nn.Parameter(torch.empty(config.vocab_size, d))
            trunc_normal_(self.token_embedding, 1.0 / self.embed_scale, generator)
        self.prefix_embedding = nn.Parameter(torch.empty(d))
        trunc_normal_(self.prefix_embedding, 1.0 / self.embed_scale, generator)

        self.rotary = (
            Rotary(config.head_dim, config.total_seq_len, config.rope_theta)
            if config.mixer == "attention"
            else None
        )
        self.H_level = ReasoningModule(config, config.h_layers, generator)
        self.L_level = ReasoningModule(config, config.l_layers, generator)

        # The candidate grid reads one score per (cell, digit) slot; other mixers one logit per
        # token value from the whole cell.
        self.lm_head = Linear(
            config.slot_size, 1 if self.candidates else config.vocab_size, generator=generator
        )
        self.q_head = Linear(d, 2, bias=True, generator=generator)
        self.aux_head = (
            Linear(d, config.aux_classes, generator=generator) if config.aux_target else None
        )
        with torch.no_grad():
            # Paper: Q starts near "never halt" (sigmoid(-5) ~ 0.007) with zero weight, which
            # speeds up the bootstrapping of the Q-learning targets.
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(config.q_bias_init)

        # Fixed initial states, drawn once and never trained; persistent so that a checkpoint
        # reproduces the exact same recurrence.
        # With digit slots every slot starts alike (one slot-wide draw, repeated), so that
        # relabelling the digits relabels the whole computation.
        z_H0 = trunc_normal_(torch.empty(config.slot_size), 1.0, generator).repeat(config.slots)
        z_L0 = trunc_normal_(torch.empty(config.slot_size), 1.0, generator).repeat(config.slots)
        self.register_buffer("z_H0", z_H0, persistent=True)
        self.register_buffer("z_L0", z_L0, persistent=True)

        # Derived from the config, so not saved with the weights.
        self.register_buffer("output_allowed", output_table(config), persistent=False)
        self.register_buffer("wall_table", wall_table(config), persistent=False)

    # ------------------------------------------------------------------ helpers
    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.prefix_embedding.device

    def autocast(self) -> contextlib.AbstractContextManager:
        """The precision context the model computes in: bf16 autocast on CUDA when configured,
        otherwise nothing (CPU always computes in float32)."""
        if self.device.type == "cuda" and self.config.compute_dtype == "bfloat16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def enable_compile(self, **kwargs) -> None:
        """Compile the two reasoning modules in place with ``torch.compile(**kwargs)``.

        Only the recurrent modules are compiled: they are where the time goes, and keeping the
        Python loop outside lets no_grad/grad updates share the compiled code (one recompile
        for each grad mode).
        """
        self.H_level.compile(**kwargs)
        self.L_level.compile(**kwargs)

    # ------------------------------------------------------------------ carry
    def initial_carry(self, batch_size: int, device: torch.device | str | None = None) -> Carry:
        """The fixed initial state for ``batch_size`` puzzles, (B, L, D) float32 each."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        device = self.device if device is None else torch.device(device)
        shape = (batch_size, self.config.total_seq_len, self.config.hidden_size)
        return Carry(
            z_H=self.z_H0.to(device=device, dtype=torch.float32).expand(shape).clone(),
            z_L=self.z_L0.to(device=device, dtype=torch.float32).expand(shape).clone(),
        )

    def reset_carry(self, carry: Carry, mask: torch.Tensor) -> Carry:
        """Rows where ``mask`` (B,) bool is True go back to the initial state; others kept."""
        B = carry.z_H.shape[0]
        if mask.shape != (B,):
            raise ValueError(f"mask must have shape ({B},), got {tuple(mask.shape)}")
        m = mask.to(device=carry.z_H.device, dtype=torch.bool).view(B, 1, 1)
        return Carry(
            z_H=torch.where(m, self.z_H0.to(carry.z_H.dtype), carry.z_H),
            z_L=torch.where(m, self.z_L0.to(carry.z_L.dtype), carry.z_L),
        )

    # ------------------------------------------------------------------ input
    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embed (B, S) integer tokens into the (B, L, D) float32 input injection x."""
        if tokens.dim() != 2 or tokens.shape[1] != self.config.seq_len:
            raise ValueError(
                f"tokens must have shape (B, {self.config.seq_len}), got {tuple(tokens.shape)}"
            )
        if tokens.dtype.is_floating_point or tokens.dtype == torch.bool:
            raise ValueError(f"tokens must be an integer tensor, got {tokens.dtype}")
        if tokens.device.type == "cpu" and tokens.numel():
            # Checked on CPU only: on CUDA the check would cost a device sync per call.
            low, high = int(tokens.min()), int(tokens.max())
            if low < 0 or high >= self.config.vocab_size:
                raise ValueError(
                    f"tokens must lie in [0, {self.config.vocab_size}), got values in "
                    f"[{low}, {high}]"
                )
        B, S = tokens.shape
        if self.candidates:
            digits = torch.arange(1, self.config.slots + 1, device=tokens.device)
            t = tokens.long().unsqueeze(-1)  # (B, S, 1)
            kind = torch.where(t == 0, 2, torch.where(t == digits, 0, 1))  # (B, S, K)
            cells = self.candidate_embedding[kind].view(B, S, -1)  # (B, S, K * d) = (B, S, D)
        else:
            cells = self.token_embedding[tokens.long()]  # (B, S, D)
        prefix = self.prefix_embedding.expand(B, 1, -1)  # (B, 1, D)
        return self.embed_scale * torch.cat((prefix, cells), dim=1)  # (B, L, D)

    # ------------------------------------------------------------------ recurrence
    def open_cells(self, tokens: torch.Tensor | None) -> torch.Tensor | None:
        """(B, S) bool: the cells the conv mixers may read (not walls), from the (B, S) puzzle
        tokens; None for a model without max aggregation or closed walls (``tokens`` unused)."""
        if self.wall_table is None:
            return None
        if tokens is None:
            raise ValueError(
                "this model reads walls (config.max_aggregation or closed_walls): pass the "
                "puzzle tokens to cycle, segment, update_L and update_H"
            )
        return ~self.wall_table[tokens.long().to(self.wall_table.device)]

    def update_L(self, carry: Carry, x: torch.Tensor, tokens: torch.Tensor | None = None) -> Carry:
        """One low-level step, z_L <- f_L(z_L, z_H + x); z_H unchanged.

        The finest unit of the recurrence, public for tools that look inside a cycle
        (``hrm_agent.analysis``). Runs in the ambient precision: wrap calls in
        :meth:`autocast` to compute as :meth:`cycle` does. ``tokens`` (B, S), the puzzles, are
        needed only by a model with max aggregation (here and in every method below).
        """
        z_L = self.L_level(carry.z_L, carry.z_H + x, self.rotary, self.open_cells(tokens))
        return Carry(carry.z_H, z_L)

    def update_H(self, carry: Carry, tokens: torch.Tensor | None = None) -> Carry:
        """One high-level step, z_H <- f_H(z_H, z_L); z_L unchanged (see :meth:`update_L`)."""
        z_H = self.H_level(carry.z_H, carry.z_L, self.rotary, self.open_cells(tokens))
        return Carry(z_H, carry.z_L)

    def cycle(self, carry: Carry, x: torch.Tensor, tokens: torch.Tensor | None = None) -> Carry:
        """One high-level cycle: T low-level updates with input injection, then one H update.

        Gradient follows the ambient grad mode (this method does not switch it).
        """
        with self.autocast():
            for _ in range(self.config.l_cycles):
                carry = self.update_L(carry, x, tokens)
            return self.update_H(carry, tokens)

    def segment(self, carry: Carry, x: torch.Tensor, tokens: torch.Tensor | None = None) -> Carry:
        """N high-level cycles (one ACT step) under the configured gradient mode.

        ``one-step``: everything but the final L update and the final H update runs without
        gradient, so backprop sees exactly one application of f_L and one of f_H (plus the
        embedding through x). ``last-cycle``: the final cycle's T L-updates and its H update
        all keep gradient. With gradient disabled by the caller both modes compute the same.
        """
        N, T = self.config.h_cycles, self.config.l_cycles
        with self.autocast():
            with torch.no_grad():
                for _ in range(N - 1):
                    carry = self.cycle(carry, x, tokens)
                if self.config.gradient == "one-step":
                    for _ in range(T - 1):
                        carry = self.update_L(carry, x, tokens)
            if self.config.gradient == "one-step":
                carry = self.update_H(self.update_L(carry, x, tokens), tokens)
            else:
                carry = self.cycle(carry, x, tokens)
            return carry

    def answer_cells(self, tokens: torch.Tensor) -> torch.Tensor | None:
        """(B, S) bool: the cells whose answer the model chooses, given (B, S) puzzle tokens;
        None when every cell chooses (no output mask). The others copy what the mask allows
        them, so they cannot be wrong and carry no loss."""
        if self.output_allowed is None:
            return None
        return self._allowed(tokens).sum(-1) > 1

    def _allowed(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, S, V) bool: the output tokens each cell's input allows (needs a mask)."""
        return self.output_allowed[tokens.long().to(self.output_allowed.device)]

    def readout(self, carry: Carry, tokens: torch.Tensor | None = None) -> Outputs:
        """Token logits from z_H of the cells, (halt, continue) Q logits from the prefix.

        ``tokens`` (B, S), the puzzle, is needed only by a model with an output mask
        (``config.output_choices``): a cell's tokens that its input rules out get a logit far
        below any score.
        """
        if self.output_allowed is not None and tokens is None:
            raise ValueError(
                "this model has an output mask (config.output_choices): pass the puzzle tokens "
                "to readout"
            )
        with self.autocast():
            cells = carry.z_H[:, 1:]
            if self.candidates:
                B, S, D = cells.shape
                K = self.config.slots
                scores = self.lm_head(cells.reshape(B, S, K, D // K)).squeeze(-1)  # (B, S, K)
                # Only the digits 1..K can be answers: every other token (blank, and in a
                # small grid the digits beyond K) gets a logit far below any score.
                logits = scores.new_full((B, S, self.config.vocab_size), _ABSENT_LOGIT)
                logits[..., 1 : K + 1] = scores
            else:
                logits = self.lm_head(cells)  # (B, S, V)
                if self.output_allowed is not None:
                    logits = logits.masked_fill(~self._allowed(tokens), _ABSENT_LOGIT)
            q = self.q_head(carry.z_H[:, 0])  # (B, 2)
            aux = None if self.aux_head is None else self.aux_head(cells).float()  # (B, S, C)
        q = q.float()
        return Outputs(logits=logits.float(), q_halt=q[:, 0], q_continue=q[:, 1], aux_logits=aux)

    def forward(self, carry: Carry, tokens: torch.Tensor) -> tuple[Carry, Outputs]:
        """One segment of deep supervision: detach the carry, run N cycles, read out.

        Args:
            carry: state from :meth:`initial_carry` or a previous call (detached here).
            tokens: (B, S) integer puzzle tokens.

        Returns:
            The new carry (detached: no gradient crosses segments) and the outputs, which do
            carry gradient when grad is enabled.
        """
        tokens = tokens.to(self.device)
        x = self.embed(tokens)
        carry = self.segment(carry.detach(), x, tokens)
        outputs = self.readout(carry, tokens)
        return carry.detach(), outputs
