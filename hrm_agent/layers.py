"""Building blocks of the HRM: RMS norm, SwiGLU, RoPE, attention, token-mixing MLP, blocks.

Every linear map is bias-free and starts from a truncated (+-2 sigma) LeCun normal, as in the
paper's code; the norms have no learned scale (post-norm keeps the residual stream at unit RMS,
which is what lets the same modules be applied over and over).

Shapes: B batch, L positions (1 prefix + S cells), D hidden, H heads, K head size (D / H).
"""

from __future__ import annotations

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

    def forward(self, x: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        return self.mlp(x.transpose(1, 2)).transpose(1, 2)  # (B, D, L) -> (B, L, D)


class Block(nn.Module):
    """Post-norm block: ``x = norm(x + mix(x)); x = norm(x + swiglu(x))``."""

    def __init__(self, config: HRMConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.mixer: Attention | TokenMLP
        if config.mixer == "attention":
            self.mixer = Attention(config, generator)
        else:
            self.mixer = TokenMLP(config, generator)
        self.mlp = SwiGLU(config.hidden_size, config.mlp_width, generator)
        self.eps = config.rms_norm_eps

    def forward(self, x: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        x = rms_norm(x + self.mixer(x, rotary), self.eps)
        return rms_norm(x + self.mlp(x), self.eps)


class ReasoningModule(nn.Module):
    """One recurrent level (H or L): add the injected input, then run the blocks.

    ``f(z, injection) = blocks(z + injection)``; the same weights are reused at every update.
    """

    def __init__(
        self, config: HRMConfig, num_layers: int, generator: torch.Generator | None = None
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(config, generator) for _ in range(num_layers))

    def forward(
        self, z: torch.Tensor, injection: torch.Tensor, rotary: Rotary | None
    ) -> torch.Tensor:
        z = z + injection  # (B, L, D)
        for block in self.blocks:
            z = block(z, rotary)
        return z
