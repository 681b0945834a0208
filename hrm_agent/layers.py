"""Building blocks of the HRM: RMS norm, SwiGLU, RoPE, the token mixers, blocks.

Every linear map is bias-free and starts from a truncated (+-2 sigma) LeCun normal, as in the
paper's code; the norms have no learned scale (post-norm keeps the residual stream at unit RMS,
which is what lets the same modules be applied over and over).

Shapes: B batch, L positions (1 prefix + S cells), D hidden, H heads, K head size (D / H).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from hrm_agent.config import HRMConfig, swiglu_width

# Standard deviation of a unit normal truncated to [-2, 2]; dividing by it makes the
# *resulting* std the one asked for (torch's trunc_normal_ takes the pre-truncation std).
_TRUNC2_STD = math.sqrt(
    1.0 - 4.0 * math.exp(-2.0) / math.sqrt(2.0 * math.pi) / math.erf(2.0 / math.sqrt(2.0))
)


def trunc_normal_(
    tensor: torch.Tensor, std: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Fill ``tensor`` in place from a normal truncated at +-2 std whose actual std is ``std``."""
    if std == 0:
        return tensor.zero_()
    sigma = std / _TRUNC2_STD
    return nn.init.trunc_normal_(
        tensor, mean=0.0, std=sigma, a=-2.0 * sigma, b=2.0 * sigma, generator=generator
    )


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """Scale-free RMS norm over the last dimension, computed in float32.

    The result is float32 whatever the input: under bf16 autocast this keeps the residual
    stream (and so the carry) in full precision while the matmuls run in bf16.
    """
    x = x.float()
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)


class Linear(nn.Module):
    """Bias-optional linear map with truncated LeCun init (std 1/sqrt(fan_in))."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        trunc_normal_(self.weight, 1.0 / math.sqrt(in_features), generator)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))`` over the last dimension (gate and up fused)."""

    def __init__(self, dim: int, width: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.gate_up = Linear(dim, 2 * width, generator=generator)
        self.down = Linear(width, dim, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Rotary(nn.Module):
    """Rotary position embedding tables for L positions (rotate-half convention)."""

    def __init__(self, head_dim: int, positions: int, theta: float) -> None:
        super().__init__()
        inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angles = torch.outer(torch.arange(positions, dtype=torch.float64), inv_freq)  # (L, K/2)
        angles = torch.cat((angles, angles), dim=-1)  # (L, K)
        # Not persistent: recomputed from the config, so checkpoints hold only learned weights.
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate ``x`` of shape (B, H, L, K) by its positions; returns x's dtype."""
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        rotated = torch.cat((-x2, x1), dim=-1)
        return (x * self.cos + rotated * self.sin).to(x.dtype)


class Attention(nn.Module):
    """Non-causal multi-head self-attention with RoPE, through PyTorch's SDPA kernel."""

    def __init__(self, config: HRMConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        d = config.hidden_size
        self.qkv = Linear(d, 3 * d, generator=generator)
        self.out = Linear(d, d, generator=generator)

    def output_weights(self) -> tuple[torch.Tensor, ...]:
        """The weights that end this mixer's residual branch (zeroed by zero_init_residual)."""
        return (self.out.weight,)

    def forward(self, x: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, K)
        if rotary is not None:
            q, k = rotary(q), rotary(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=False)  # (B, H, L, K)
        return self.out(y.transpose(1, 2).reshape(B, L, D))


class TokenMLP(nn.Module):
    """TRM-style token mixer: a SwiGLU across the sequence dimension, shared over channels.

    Mixing weights are indexed by position, so no positional encoding is needed; the size
    grows with L^2 (fine for Sudoku's 82 positions, large for a 901-position maze).
    """

    def __init__(self, config: HRMConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        n = config.total_seq_len
        self.mlp = SwiGLU(n, swiglu_width(n, config.expansion, config.multiple_of), generator)

    def output_weights(self) -> tuple[torch.Tensor, ...]:
        """The weights that end this mixer's residual branch (zeroed by zero_init_residual)."""
        return (self.mlp.down.weight,)

    def forward(self, x: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        return self.mlp(x.transpose(1, 2)).transpose(1, 2)  # (B, D, L) -> (B, L, D)


@functools.lru_cache(maxsize=8)
def _sudoku_tables(
    n: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Membership tables of an n x n Sudoku: ``pool`` (3n + 1, S) averages the cells of each
    row, column and box, then of the whole grid; ``spread`` (S, 3n) sums, for each cell, its
    row's, column's and box's entries.

    Pooling and spreading back as two small matmuls is 4-5x faster on a CPU than means over
    strided views of the grid. Derived from n alone (cached, never saved in a checkpoint).
    """
    b, S = math.isqrt(n), n * n
    pool = torch.zeros(3 * n + 1, S, dtype=torch.float64)
    spread = torch.zeros(S, 3 * n, dtype=torch.float64)
    for i in range(S):
        r, c = divmod(i, n)
        units = [r, n + c, 2 * n + (r // b) * b + c // b]
        pool[units, i] = 1.0 / n
        spread[i, units] = 1.0
    pool[3 * n] = 1.0 / S
    return pool.to(device=device, dtype=dtype), spread.to(device=device, dtype=dtype)


class CandidateMixer(nn.Module):
    """Sudoku candidate-grid mixer: one slot per (cell, digit), weights shared over both.

    The state of a cell is ``K = side`` slot vectors of width ``d``, slot k standing for "digit
    k+1 here". Each slot receives linear maps of four means, all with the same weights for
    every digit and every cell:

    * the mean over its own cell's K slots ("what else could go in this cell");
    * the mean of the same digit's slots over its row, its column and its box, one map for
      lines (rows and columns alike) and one for boxes ("is this digit already placed, or
      still possible, in this unit").

    So the two Sudoku rules (one digit per cell, each digit once per unit) are each a single
    pooled vector away, and the model is equivariant to relabelling digits and to the grid's
    symmetries. The prefix position (read by the Q head) gets a map of the mean over all cells,
    per digit slot; cells do not read the prefix.
    """

    def __init__(self, config: HRMConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        d = config.slot_size
        self.side = config.grid_side
        self.cell = Linear(d, d, generator=generator)
        # One map for rows and columns: the rules treat them alike, and sharing keeps the
        # model equivariant to transposing the grid.
        self.line = Linear(d, d, generator=generator)
        self.unit_box = Linear(d, d, generator=generator)
        self.summary = Linear(d, d, generator=generator)

    def output_weights(self) -> tuple[torch.Tensor, ...]:
        """The weights that end this mixer's residual branch (zeroed by zero_init_residual)."""
        return (self.cell.weight, self.line.weight, self.unit_box.weight, self.summary.weight)

    def forward(self, x: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        B, L, K, d = x.shape  # L = 1 + n*n positions, K digit slots of width d
        n, S = self.side, L - 1
        cells = x[:, 1:]  # (B, S, K, d)
        pool, spread = _sudoku_tables(n, x.device, x.dtype)
        pooled = torch.matmul(pool, cells.reshape(B, S, K * d))
        pooled = pooled.view(B, 3 * n + 1, K, d)  # rows, columns, boxes, all cells
        units = torch.cat(
            (self.line(pooled[:, : 2 * n]), self.unit_box(pooled[:, 2 * n : 3 * n])), dim=1
        )  # (B, 3n, K, d)
        out = torch.matmul(spread, units.view(B, 3 * n, K * d))
        out = out.view(B, S, K, d) + self.cell(cells.mean(2, keepdim=True))  # (B, S, K, d)
        prefix = self.summary(pooled[:, 3 * n :])  # (B, 1, K, d)
        return torch.cat((prefix, out), dim=1)  # (B, L, K, d)


def max_channels(width: int) -> int:
    """How many of a conv block's channels the max aggregation acts on: the first quarter."""
    return max(1, width // 4)


def neighbour_max(grid: torch.Tensor, open_cells: torch.Tensor) -> torch.Tensor:
    """Per channel, the largest value over each cell's open 4-neighbours; 0 where it has none.

    Args:
        grid: (B, D, n, n) features.
        open_cells: (B, 1, n, n) bool, the cells that may be read (not walls); a closed cell
            and the outside of the grid are never read.
    """
    low = torch.finfo(grid.dtype).min
    padded = F.pad(grid.masked_fill(~open_cells, low), (1, 1, 1, 1), value=low)
    vertical = torch.maximum(padded[:, :, :-2, 1:-1], padded[:, :, 2:, 1:-1])
    horizontal = torch.maximum(padded[:, :, 1:-1, :-2], padded[:, :, 1:-1, 2:])
    best = torch.maximum(vertical, horizontal)
    return torch.where(best > low, best, torch.zeros_like(best))


class ConvMixer(nn.Module):
    """Grid mixer: a ``k x k`` convolution over the (side, side) grid of cells.

    Depthwise (the default): each channel of a cell mixes with the same channel of its
    neighbours (zero padding outside the grid); the block's channel SwiGLU then mixes channels
    within each cell. Full (``conv_mix="full"``): each output channel reads every channel of
    the neighbourhood. A cell's reach
    per block is ``dilation * (k // 2)`` cells, so the cost is O(S) per cycle. The prefix
    position, read by the Q head, gets a linear map of the mean of all cells (a global summary
    that the cells themselves never read, so the mixer stays strictly local).

    With ``config.max_aggregation`` the first quarter of the channels also add
    ``gate * neighbour_max``: each one's largest value over the cell's open 4-neighbours
    (:func:`neighbour_max`, walls never read), with a learnt per-channel gate that starts at
    0, so the block starts as without it. A quarter, because the max's backward pass is the
    expensive part (on all 64 channels of a maze block it doubled the training step).

    With ``config.closed_walls`` the convolution reads a wall cell as 0 (as it reads the
    outside of the grid), so nothing crosses a wall and a cell's reach follows open cells.
    """

    def __init__(
        self, config: HRMConfig, dilation: int, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.side = config.grid_side
        self.dilation = dilation
        d, k = config.hidden_size, config.conv_kernel
        # Depthwise: one k x k kernel per channel (groups = d); full: every output channel
        # reads every input channel of the neighbourhood.
        self.groups = d if config.conv_mix == "depthwise" else 1
        fan_in = (d // self.groups) * k * k
        self.weight = nn.Parameter(torch.empty(d, d // self.groups, k, k))
        trunc_normal_(self.weight, 1.0 / math.sqrt(fan_in), generator)
        self.summary = Linear(d, d, generator=generator)
        self.max_gate = (
            nn.Parameter(torch.zeros(max_channels(d)))
            if config.max_aggregation is not None
            else None
        )
        self.closed_walls = config.closed_walls is not None

    def output_weights(self) -> tuple[torch.Tensor, ...]:
        """The weights that end this mixer's residual branch (zeroed by zero_init_residual)."""
        gate = () if self.max_gate is None else (self.max_gate,)
        return (self.weight, self.summary.weight, *gate)

    def forward(
        self, x: torch.Tensor, rotary: Rotary | None, open_cells: torch.Tensor | None = None
    ) -> torch.Tensor:
        B, L, D = x.shape
        n = self.side
        grid = x[:, 1:].transpose(1, 2).reshape(B, D, n, n)  # (B, D, n, n)
        if self.closed_walls:
            if open_cells is None:
                raise ValueError("a conv mixer with closed walls needs open_cells (B, S)")
            # A wall passes nothing on: its neighbours read 0 there, as outside the grid.
            grid = grid.masked_fill(~open_cells.view(B, 1, n, n), 0.0)
        pad = self.dilation * (self.weight.shape[-1] // 2)
        mixed = F.conv2d(grid, self.weight, padding=pad, dilation=self.dilation, groups=self.groups)
        if self.max_gate is not None:
            if open_cells is None:
                raise ValueError("a conv mixer with max aggregation needs open_cells (B, S)")
            m = self.max_gate.shape[0]
            reach = neighbour_max(grid[:, :m], open_cells.view(B, 1, n, n))
            gated = self.max_gate.to(grid.dtype).view(1, m, 1, 1) * reach
            mixed = torch.cat((mixed[:, :m] + gated, mixed[:, m:]), dim=1)
        cells = mixed.flatten(2).transpose(1, 2)  # (B, S, D)
        prefix = self.summary(x[:, 1:].mean(1, keepdim=True))  # (B, 1, D)
        return torch.cat((prefix, cells), dim=1)


class Block(nn.Module):
    """Post-norm block: ``x = norm(x + mix(x)); x = norm(x + swiglu(x))``.

    With ``slots > 1`` (the candidate grid) the D channels of a position are K slots of width
    D / K: the norms and the channel SwiGLU act on each slot with weights shared over slots.
    """

    def __init__(
        self, config: HRMConfig, index: int = 0, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.mixer: Attention | TokenMLP | CandidateMixer | ConvMixer
        if config.mixer == "attention":
            self.mixer = Attention(config, generator)
        elif config.mixer == "mlp":
            self.mixer = TokenMLP(config, generator)
        elif config.mixer == "candidates":
            self.mixer = CandidateMixer(config, generator)
        else:
            dilations = config.dilations
            self.mixer = ConvMixer(config, dilations[index % len(dilations)], generator)
        self.slots = config.slots
        self.mlp = SwiGLU(config.slot_size, config.mlp_width, generator)
        self.eps = config.rms_norm_eps
        if config.zero_init_residual:
            with torch.no_grad():
                for weight in (*self.mixer.output_weights(), self.mlp.down.weight):
                    weight.zero_()

    def forward(
        self, x: torch.Tensor, rotary: Rotary | None, open_cells: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``open_cells`` (B, S) bool: the cells a max-aggregating conv mixer may read."""
        shape = x.shape
        if self.slots > 1:
            x = x.view(*shape[:-1], self.slots, shape[-1] // self.slots)  # (B, L, K, D/K)
        if isinstance(self.mixer, ConvMixer):
            mixed = self.mixer(x, rotary, open_cells)
        else:
            mixed = self.mixer(x, rotary)
        x = rms_norm(x + mixed, self.eps)
        x = rms_norm(x + self.mlp(x), self.eps)
        return x.view(shape)


class ReasoningModule(nn.Module):
    """One recurrent level (H or L): add the injected input, then run the blocks.

    ``f(z, injection) = blocks(z + injection)``; the same weights are reused at every update.
    """

    def __init__(
        self, config: HRMConfig, num_layers: int, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(config, i, generator) for i in range(num_layers))

    def forward(
        self,
        z: torch.Tensor,
        injection: torch.Tensor,
        rotary: Rotary | None,
        open_cells: torch.Tensor | None = None,
    ) -> torch.Tensor:
        z = z + injection  # (B, L, D)
        for block in self.blocks:
            z = block(z, rotary, open_cells)
        return z
