"""The HRM's configuration: one frozen dataclass, named presets, JSON round trip.

A config describes the network (sizes, cycle counts, ablation flags) and the few training
choices that are part of "what model is this" (loss, EMA decay, ACT limit and exploration), so
that a checkpoint's JSON alone says how its weights were made. Derived quantities (head size,
SwiGLU width, parameter count) are properties, never stored fields.

Presets (Sudoku sizes unless overridden, e.g. ``HRMConfig.preset("small", vocab_size=6,
seq_len=900)`` for the 30x30 maze):

========  ======  =====  ======  ====  ========  ============================================
preset    hidden  heads  layers  N, T  segments  use
========  ======  =====  ======  ====  ========  ============================================
paper     512     8      4 + 4   2, 2  16        the paper's model, about 27M parameters
small     256     4      4 + 4   2, 2  16        shipped default, under 8M parameters
tiny      32      2      2 + 2   2, 2  8         CPU tests and 4x4 mini Sudoku, about 50k
========  ======  =====  ======  ====  ========  ============================================
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

GRADIENT_MODES = ("one-step", "last-cycle")
MIXERS = ("attention", "mlp", "candidates", "conv")
LOSSES = ("stablemax", "softmax")
COMPUTE_DTYPES = ("bfloat16", "float32")
CONV_MIXES = ("depthwise", "full")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def swiglu_width(dim: int, expansion: float, multiple_of: int) -> int:
    """Intermediate width of a SwiGLU that costs about as much as a ``expansion * dim`` MLP.

    Two thirds of ``expansion * dim`` (the gate doubles the input projection), rounded up to a
    multiple of ``multiple_of`` so the matmuls stay aligned.
    """
    return _round_up(round(expansion * dim * 2 / 3), multiple_of)


@dataclass(frozen=True)
class HRMConfig:
    """Everything that defines an HRM network; see the module docstring for the presets."""

    vocab_size: int = 10
    """Number of token values (Sudoku 10: blank + 9 digits; maze 6)."""
    seq_len: int = 81
    """Number of puzzle cells S; the model adds one prefix position, so it runs on 1 + S."""
    hidden_size: int = 256
    """Model width D."""
    num_heads: int = 4
    """Attention heads; must divide ``hidden_size`` into an even head size (RoPE)."""
    expansion: float = 4.0
    """SwiGLU expansion factor (intermediate width = 2/3 * expansion * D, rounded up)."""
    multiple_of: int = 256
    """SwiGLU intermediate widths are rounded up to a multiple of this."""
    h_layers: int = 4
    """Transformer blocks in the high-level (slow) module."""
    l_layers: int = 4
    """Transformer blocks in the low-level (fast) module."""
    h_cycles: int = 2
    """N: high-level cycles per segment (one ACT step)."""
    l_cycles: int = 2
    """T: low-level updates per high-level cycle."""
    max_segments: int = 16
    """ACT limit: the most segments a puzzle may run (paper: 16)."""
    halt_exploration: float = 0.1
    """ACT exploration probability: with it a sample draws a random minimum segment count."""
    gradient: str = "one-step"
    """Gradient mode: ``one-step`` (only the last L and last H update of a segment carry
    gradient, the paper's approximation) or ``last-cycle`` (the whole last cycle does)."""
    mixer: str = "attention"
    """Token mixer: ``attention`` (non-causal self-attention with RoPE, the paper's), ``mlp``
    (a SwiGLU across the sequence dimension, as in TRM), ``candidates`` (Sudoku only: the state
    of a cell is one slot per digit, ``hidden_size / side`` wide each, mixed within the cell and
    within each row, column and box by weights shared over digits and cells) or ``conv`` (grid
    tasks: a depthwise convolution over the (side, side) grid of cells; the prefix position
    reads the mean of the cells). The structure comes from ``seq_len`` alone."""
    conv_kernel: int = 3
    """``conv`` only: side of the depthwise convolution kernel (odd)."""
    conv_dilations: str = "1"
    """``conv`` only: comma-separated dilations, cycled over the blocks of each level (e.g.
    ``1,2,4,8`` widens a block's reach to 2 * 8 + 1 cells)."""
    conv_mix: str = "depthwise"
    """``conv`` only: ``depthwise`` (each channel mixes with the same channel of its
    neighbours; the block's SwiGLU mixes channels) or ``full`` (a channel-mixing k x k
    convolution, as DeepThinking's recurrent nets; d^2 k^2 weights per block)."""
    zero_init_residual: bool = False
    """Start the last map of every residual branch (the mixer's output, the SwiGLU's down
    projection) at zero, so each block starts as the identity on its normalised input and a
    deep recurrence starts stable."""
    loss: str = "stablemax"
    """Cell loss: ``stablemax`` (the paper's choice for small-sample training) or ``softmax``."""
    ema: float = 0.0
    """Decay of the exponential moving average of the weights kept by the trainer; 0 = off."""
    rope_theta: float = 10000.0
    """RoPE base frequency."""
    rms_norm_eps: float = 1e-5
    """Epsilon of the (parameter-free) RMS norms."""
    q_bias_init: float = -5.0
    """Initial bias of both Q-head logits; the paper starts Q near 0 probability for faster
    bootstrapping (the Q-head weight starts at zero)."""
    output_choices: tuple[tuple[int, ...], ...] | None = None
    """The output mask: for each input token value v, the output tokens a cell whose input is
    v may take (``vocab_size`` entries), e.g. for a maze: a wall, S or G only itself, an open
    cell open or path. The LM head's other logits are set far below any score, and the loss
    is averaged over the cells that have a choice, so the whole signal is the decision that
    can be wrong. None: every cell may take every token (the paper's head)."""
    max_aggregation: tuple[int, ...] | None = None
    """``conv`` only: the input tokens of cells nothing passes through (a maze's walls), which
    turns on a masked neighbour max in every conv block: each of the first quarter of a cell's
    channels also gets a learnt per-channel gate (starting at 0) times the largest value of
    that channel over its 4 neighbours that are not such cells. A BFS wavefront is such a
    max: it carries a "reached" flag across the grid without the decay of a sum. The step of
    the maze recipe costs 1.4x with it on a CPU. None: off."""
    closed_walls: tuple[int, ...] | None = None
    """``conv`` only: the input tokens of cells nothing passes through (a maze's walls), whose
    features every conv block reads as 0, so information travels only through open cells, as
    a BFS wavefront does, and never across a wall. Without it a 3x3 conv sees the whole 30x30
    grid within a few cycles and can answer from geometry. Must name the same tokens as
    ``max_aggregation`` when both are set. None: off."""
    aux_target: str | None = None
    """An auxiliary per-cell target the model also predicts, from z_H of the cells, during
    training only (the task's ``aux_targets``, e.g. ``distance3`` for a maze: moves to G mod
    3), or None. It adds a small head and a loss; answers and halting never read it."""
    aux_classes: int = 0
    """Classes of ``aux_target`` (0 without one)."""
    compute_dtype: str = "bfloat16"
    """Autocast dtype for the blocks when the model is on CUDA (``float32`` disables
    autocast). CPU always computes in float32; the carry is float32 everywhere."""

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        positive_ints = (
            "vocab_size",
            "seq_len",
            "hidden_size",
            "num_heads",
            "multiple_of",
            "h_layers",
            "l_layers",
            "h_cycles",
            "l_cycles",
            "max_segments",
            "conv_kernel",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"HRMConfig.{name} must be a positive int, got {value!r}")
        if self.vocab_size < 2:
            raise ValueError(f"HRMConfig.vocab_size must be >= 2, got {self.vocab_size}")
        if self.mixer == "attention" and self.hidden_size % self.num_heads:
            raise ValueError(
                f"HRMConfig.num_heads={self.num_heads} must divide hidden_size={self.hidden_size}"
            )
        if self.mixer == "attention" and self.head_dim % 2:
            raise ValueError(
                f"head size hidden_size/num_heads = {self.head_dim} must be even for RoPE"
            )
        if self.mixer in ("candidates", "conv"):
            self._check_grid()
        if self.conv_kernel % 2 == 0:
            raise ValueError(f"HRMConfig.conv_kernel must be odd, got {self.conv_kernel}")
        self.dilations  # noqa: B018 - parses (and so validates) conv_dilations
        choices = {
            "gradient": GRADIENT_MODES,
            "mixer": MIXERS,
            "loss": LOSSES,
            "compute_dtype": COMPUTE_DTYPES,
            "conv_mix": CONV_MIXES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"HRMConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        for name in (
            "expansion",
            "rope_theta",
            "rms_norm_eps",
            "ema",
            "halt_exploration",
            "q_bias_init",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"HRMConfig.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"HRMConfig.{name} must be finite, got {value!r}")
        for name in ("expansion", "rope_theta", "rms_norm_eps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"HRMConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"HRMConfig.ema must lie in [0, 1) (0 = off), got {self.ema!r}")
        if not isinstance(self.zero_init_residual, bool):
            raise ValueError(
                f"HRMConfig.zero_init_residual must be a bool, got {self.zero_init_residual!r}"
            )
        if self.output_choices is not None:
            self._check_output_choices()
        if self.max_aggregation is not None:
            self._check_walls("max_aggregation", self.max_aggregation)
        if self.closed_walls is not None:
            self._check_walls("closed_walls", self.closed_walls)
            if self.max_aggregation not in (None, self.closed_walls):
                raise ValueError(
                    "HRMConfig.closed_walls and max_aggregation must name the same wall tokens, "
                    f"got {self.closed_walls!r} and {self.max_aggregation!r}"
                )
        if (self.aux_target is None) != (self.aux_classes == 0):
            raise ValueError(
                "HRMConfig.aux_target and aux_classes go together: a target name with >= 2 "
                f"classes, or None with 0; got {self.aux_target!r} with {self.aux_classes!r}"
            )
        if self.aux_target is not None and (
            not isinstance(self.aux_classes, int) or self.aux_classes < 2
        ):
            raise ValueError(f"HRMConfig.aux_classes must be >= 2, got {self.aux_classes!r}")
        if not 0.0 <= self.halt_exploration <= 1.0:
            raise ValueError(
                f"HRMConfig.halt_exploration must lie in [0, 1], got {self.halt_exploration!r}"
            )

    def _is_token_tuple(self, tokens: Any) -> bool:
        """Whether ``tokens`` is a non-empty tuple of ints in [0, vocab_size)."""
        return (
            isinstance(tokens, tuple)
            and bool(tokens)
            and all(isinstance(t, int) and not isinstance(t, bool) for t in tokens)
            and all(0 <= t < self.vocab_size for t in tokens)
        )

    def _check_output_choices(self) -> None:
        choices = self.output_choices
        if not isinstance(choices, tuple) or len(choices) != self.vocab_size:
            raise ValueError(
                f"HRMConfig.output_choices must hold one tuple of tokens per input token "
                f"({self.vocab_size}), got {choices!r}"
            )
        if self.mixer == "candidates":
            raise ValueError("HRMConfig.output_choices does not apply to the candidate grid")
        for value, allowed in enumerate(choices):
            if not self._is_token_tuple(allowed):
                raise ValueError(
                    f"HRMConfig.output_choices[{value}] must be a non-empty tuple of tokens in "
                    f"[0, {self.vocab_size}), got {allowed!r}"
                )

    def _check_walls(self, name: str, walls: object) -> None:
        if self.mixer != "conv":
            raise ValueError(f"HRMConfig.{name} needs the conv mixer, not {self.mixer!r}")
        if not self._is_token_tuple(walls):
            raise ValueError(
                f"HRMConfig.{name} must be a non-empty tuple of wall tokens in "
                f"[0, {self.vocab_size}), got {walls!r}"
            )

    def _check_grid(self) -> None:
        try:
            side = self.grid_side
        except ValueError:
            raise ValueError(
                f"mixer {self.mixer!r} needs a square grid of cells, but seq_len={self.seq_len} "
                "is not a square"
            ) from None
        if self.mixer != "candidates":
            return
        box = math.isqrt(side)
        if box * box != side:
            raise ValueError(
                f"mixer 'candidates' needs a Sudoku grid (side a square), got a {side}x{side} grid"
            )
        if self.vocab_size <= side:
            raise ValueError(
                f"mixer 'candidates' needs tokens 1..{side} for the digits, but vocab_size is "
                f"{self.vocab_size}"
            )
        if self.hidden_size % side:
            raise ValueError(
                f"mixer 'candidates' splits hidden_size into {side} digit slots; "
                f"hidden_size={self.hidden_size} is not a multiple of {side}"
            )

    # ------------------------------------------------------------------ derived values
    @property
    def grid_side(self) -> int:
        """Side of the square grid the cells form (``conv`` and ``candidates``): 9 for 9x9
        Sudoku, 4 for mini Sudoku, 30 for the maze. Raises ValueError if S is not a square."""
        side = math.isqrt(self.seq_len)
        if side * side != self.seq_len:
            raise ValueError(f"seq_len={self.seq_len} is not a square grid")
        return side

    @property
    def slots(self) -> int:
        """Vectors per position: the number of digits for ``candidates`` (one slot per
        candidate digit), else 1."""
        return self.grid_side if self.mixer == "candidates" else 1

    @property
    def slot_size(self) -> int:
        """Width of one slot, ``hidden_size / slots``: the width every per-slot weight sees."""
        return self.hidden_size // self.slots

    @property
    def dilations(self) -> tuple[int, ...]:
        """``conv_dilations`` parsed: the dilation of block i is ``dilations[i % len]``."""
        try:
            values = tuple(int(v) for v in self.conv_dilations.split(","))
        except (AttributeError, ValueError):
            values = ()
        if not values or min(values) < 1:
            raise ValueError(
                "HRMConfig.conv_dilations must be comma-separated positive ints such as "
                f"'1,2,4', got {self.conv_dilations!r}"
            )
        return values

    @property
    def _conv_inputs(self) -> int:
        """Input channels each output channel of the conv mixer reads per neighbour."""
        return self.hidden_size if self.conv_mix == "full" else 1

    @property
    def head_dim(self) -> int:
        """Size of one attention head, D / heads."""
        return self.hidden_size // self.num_heads

    @property
    def total_seq_len(self) -> int:
        """Positions the model runs on: one prefix position (read by the Q head) + S cells."""
        return self.seq_len + 1

    @property
    def mlp_width(self) -> int:
        """Intermediate width of the channel SwiGLU of each block (per slot)."""
        return swiglu_width(self.slot_size, self.expansion, self.multiple_of)

    @property
    def mixer_width(self) -> int:
        """Intermediate width of the token-mixing SwiGLU (``mixer="mlp"`` only)."""
        return swiglu_width(self.total_seq_len, self.expansion, self.multiple_of)

    @property
    def cycles_per_segment(self) -> int:
        """High-level cycles in one segment (N)."""
        return self.h_cycles

    @property
    def max_cycles(self) -> int:
        """High-level cycles at the ACT limit, N * max_segments."""
        return self.h_cycles * self.max_segments

    @property
    def num_parameters(self) -> int:
        """Trainable parameters of the model this config builds (computed, not counted)."""
        d, n = self.hidden_size, self.total_seq_len
        if self.mixer == "attention":
            mixer = d * 3 * d + d * d  # fused qkv + output projection, no biases
        elif self.mixer == "mlp":
            mixer = 3 * n * self.mixer_width  # gate+up (n -> 2w) and down (w -> n)
        elif self.mixer == "candidates":
            mixer = 4 * self.slot_size**2  # cell, line (row and column), box, prefix maps
        else:  # depthwise or full kernel, + the prefix summary map (+ the max gate)
            mixer = self._conv_inputs * d * self.conv_kernel**2 + d * d
            mixer += max(1, d // 4) if self.max_aggregation is not None else 0  # max gates
        block = mixer + 3 * self.slot_size * self.mlp_width
        if self.mixer == "candidates":
            # Three input kinds per slot (this digit given / another given / blank) and a
            # one-score-per-slot readout.
            io = 3 * self.slot_size + d + self.slot_size + d * 2 + 2
        else:
            io = (
                self.vocab_size * d  # token embedding
                + d  # learned prefix position
                + d * self.vocab_size  # LM head, no bias
                + d * 2
                + 2  # Q head
            )
        return block * (self.h_layers + self.l_layers) + io + d * self.aux_classes

    @property
    def flops_per_cycle(self) -> int:
        """Forward FLOPs of one high-level cycle for one puzzle (matmuls only, 2 per MAC)."""
        d, n = self.hidden_size, self.total_seq_len
        if self.mixer == "attention":
            mixer = 2 * n * 4 * d * d + 2 * 2 * n * n * d  # projections + QK^T and AV
        elif self.mixer == "mlp":
            mixer = 2 * d * 3 * n * self.mixer_width
        elif self.mixer == "candidates":
            # Maps applied to pooled slots: the cell map once per cell, the row, column and
            # box maps once per unit and digit, the prefix map once per digit.
            summaries = self.seq_len + (3 * self.grid_side + 1) * self.slots
            # Pooling and spreading back are matmuls with the membership tables too.
            tables = 2 * (3 * self.grid_side + 1) * self.seq_len * d
            tables += 2 * self.seq_len * 3 * self.grid_side * d
            mixer = 2 * summaries * self.slot_size**2 + tables
        else:
            mixer = 2 * n * self._conv_inputs * d * self.conv_kernel**2 + 2 * d * d
        block = mixer + 2 * n * 3 * d * self.mlp_width
        return block * (self.l_cycles * self.l_layers + self.h_layers)

    # ------------------------------------------------------------------ presets & JSON
    @classmethod
    def preset(cls, name: str, **overrides: Any) -> HRMConfig:
        """A named preset (``paper``, ``small``, ``tiny``) with fields overridden by keyword.

        Raises:
            ValueError: for an unknown preset name or field, or an invalid resulting value.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown HRM preset {name!r}; known presets: {sorted(PRESETS)}")
        fields = dict(PRESETS[name])
        unknown = sorted(set(overrides) - _field_names())
        if unknown:
            raise ValueError(
                f"unknown HRMConfig field(s) {unknown}; known: {sorted(_field_names())}"
            )
        fields.update(overrides)
        return cls(**fields)

    def replace(self, **changes: Any) -> HRMConfig:
        """A copy with some fields changed (validated like a new config)."""
        unknown = sorted(set(changes) - _field_names())
        if unknown:
            raise ValueError(f"unknown HRMConfig field(s) {unknown}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HRMConfig:
        """Inverse of :meth:`to_dict`; missing fields take their defaults.

        Raises:
            ValueError: if ``data`` is not a dict, has unknown keys, or holds invalid values.
        """
        if not isinstance(data, dict):
            raise ValueError(f"an HRM config must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - _field_names())
        if unknown:
            raise ValueError(
                f"unknown HRMConfig key(s) {unknown} (written by a newer hrm?); "
                f"known keys: {sorted(_field_names())}"
            )
        data = dict(data)
        if isinstance(data.get("output_choices"), list):  # JSON has lists, the config tuples
            data["output_choices"] = tuple(
                tuple(c) if isinstance(c, list) else c for c in data["output_choices"]
            )
        for key in ("max_aggregation", "closed_walls"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls(**data)


def _field_names() -> set[str]:
    return {f.name for f in dataclasses.fields(HRMConfig)}


PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(
        hidden_size=512,
        num_heads=8,
        expansion=4.0,
        multiple_of=256,
        h_layers=4,
        l_layers=4,
        h_cycles=2,
        l_cycles=2,
        max_segments=16,
    ),
    "small": dict(
        hidden_size=256,
        num_heads=4,
        expansion=4.0,
        multiple_of=256,
        h_layers=4,
        l_layers=4,
        h_cycles=2,
        l_cycles=2,
        max_segments=16,
    ),
    "tiny": dict(
        hidden_size=32,
        num_heads=2,
        expansion=4.0,
        multiple_of=16,
        h_layers=2,
        l_layers=2,
        h_cycles=2,
        l_cycles=2,
        max_segments=8,
    ),
}
"""Field values of each preset (the rest take the dataclass defaults)."""
