"""HRM model and config: shapes, gradient paths per mode, carry handling, init, presets."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from hrm_agent.config import MIXERS, HRMConfig
from hrm_agent.layers import Block, ConvMixer, ReasoningModule, Rotary
from hrm_agent.losses import softmax_cross_entropy, stablemax_cross_entropy
from hrm_agent.model import HRM, Carry, Outputs


def make(seed: int = 0, **overrides) -> HRM:
    config = HRMConfig.preset("tiny", **overrides)
    return HRM(config, generator=torch.Generator().manual_seed(seed))


def tokens(batch: int, config: HRMConfig, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (batch, config.seq_len), generator=g)


# What each mixer needs on top of the tiny preset's 9x9 Sudoku sizes: the candidate grid splits
# hidden_size into 9 digit slots (36 = 9 x 4); conv gets two dilations so both are exercised.
MIXER_OVERRIDES = {
    "attention": {},
    "mlp": {},
    "candidates": {"hidden_size": 36},
    "conv": {"conv_dilations": "1,2"},
}


# --------------------------------------------------------------------------- config
def test_paper_preset_has_about_27m_parameters():
    config = HRMConfig.preset("paper")
    with torch.device("meta"):  # count without paying for the init
        model = HRM(config)
    n = sum(p.numel() for p in model.parameters())
    assert n == config.num_parameters
    assert 26.5e6 <= n <= 27.5e6
    assert (config.hidden_size, config.num_heads, config.h_layers, config.l_layers) == (
        512,
        8,
        4,
        4,
    )
    assert (config.h_cycles, config.l_cycles, config.max_segments) == (2, 2, 16)


def test_small_preset_fits_in_8m_and_tiny_is_tiny():
    small = HRMConfig.preset("small")
    with torch.device("meta"):
        model = HRM(small)
    assert sum(p.numel() for p in model.parameters()) == small.num_parameters <= 8_000_000
    # Also for the maze, the longest sequence we ship.
    assert HRMConfig.preset("small", vocab_size=6, seq_len=900).num_parameters <= 8_000_000
    tiny = HRMConfig.preset("tiny")
    assert 10_000 <= sum(p.numel() for p in HRM(tiny).parameters()) <= 100_000


@st.composite
def model_configs(draw) -> HRMConfig:
    """Small configs of every mixer, with the sizes each one needs (square grids for conv, a
    Sudoku grid and hidden_size a multiple of the side for the candidate grid)."""
    mixer = draw(st.sampled_from(MIXERS))
    heads = draw(st.sampled_from([1, 2, 4]))
    hidden = heads * draw(st.sampled_from([2, 4, 8]))
    extra = {}
    if mixer == "candidates":
        side = draw(st.sampled_from([1, 4, 9]))
        seq_len = side * side
        hidden = side * draw(st.sampled_from([1, 2, 4]))
        heads = draw(st.sampled_from([h for h in (1, 2, 4) if hidden % h == 0]))
        vocab = draw(st.integers(side + 1, 12))
    elif mixer == "conv":
        seq_len = draw(st.integers(1, 6)) ** 2
        vocab = draw(st.integers(2, 12))
        extra = dict(
            conv_kernel=draw(st.sampled_from([1, 3, 5])),
            conv_dilations=draw(st.sampled_from(["1", "2", "1,2,3"])),
        )
    else:
        seq_len = draw(st.integers(1, 20))
        vocab = draw(st.integers(2, 12))
    layers = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    return HRMConfig(
        hidden_size=hidden,
        num_heads=heads,
        h_layers=layers[0],
        l_layers=layers[1],
        mixer=mixer,
        seq_len=seq_len,
        vocab_size=vocab,
        expansion=draw(st.sampled_from([1.0, 2.0, 4.0])),
        multiple_of=8,
        **extra,
    )


@settings(max_examples=30, deadline=None)
@given(config=model_configs())
def test_num_parameters_property_counts_the_built_model(config):
    with torch.device("meta"):
        model = HRM(config)
    assert sum(p.numel() for p in model.parameters()) == config.num_parameters


@pytest.mark.parametrize(
    "mixer, seq_len, vocab_size, overrides",
    [
        ("candidates", 81, 10, {"hidden_size": 36}),  # 9x9 Sudoku, 9 slots of 4
        ("candidates", 81, 10, {"hidden_size": 72, "num_heads": 4}),
        ("candidates", 16, 10, {}),  # 4x4 mini Sudoku, 4 slots of 8
        ("conv", 81, 10, {}),
        ("conv", 16, 10, {"conv_kernel": 5, "conv_dilations": "1,2,4"}),
        ("conv", 900, 6, {}),  # the 30x30 maze
        ("conv", 900, 6, {"conv_kernel": 7, "conv_dilations": "1,2,4,8"}),
    ],
)
def test_num_parameters_counts_the_grid_mixers(mixer, seq_len, vocab_size, overrides):
    config = HRMConfig.preset(
        "tiny", mixer=mixer, seq_len=seq_len, vocab_size=vocab_size, **overrides
    )
    with torch.device("meta"):
        model = HRM(config)
    assert sum(p.numel() for p in model.parameters()) == config.num_parameters


def _count(config: HRMConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in HRM(config).parameters())


def test_grid_mixers_have_no_weights_per_position():
    # A convolution and the candidate grid's pooled maps are the same for every cell: the size
    # of the model does not depend on the size of the grid (unlike the mlp mixer's).
    for mixer in ("conv", "mlp"):
        small = _count(HRMConfig.preset("tiny", mixer=mixer, seq_len=16))
        large = _count(HRMConfig.preset("tiny", mixer=mixer, seq_len=900))
        assert (small == large) == (mixer == "conv")


def test_candidate_weights_are_shared_over_digits_and_cells():
    # The same slot width on a 4x4 and a 9x9 grid: identical reasoning-block weights (nothing
    # in a block is per digit or per cell); only the prefix embedding and the Q head, which read
    # the whole position, grow with hidden_size.
    mini = HRM(HRMConfig.preset("tiny", mixer="candidates", seq_len=16, hidden_size=32))
    full = HRM(HRMConfig.preset("tiny", mixer="candidates", seq_len=81, hidden_size=72))
    assert mini.config.slot_size == full.config.slot_size == 8
    for name in ("H_level", "L_level"):
        a = {k: v.shape for k, v in getattr(mini, name).state_dict().items()}
        b = {k: v.shape for k, v in getattr(full, name).state_dict().items()}
        assert a == b
    assert mini.candidate_embedding.shape == full.candidate_embedding.shape == (3, 8)
    assert mini.lm_head.weight.shape == full.lm_head.weight.shape == (1, 8)
    assert not hasattr(mini, "token_embedding")


@pytest.mark.parametrize(
    "mixer, overrides",
    [
        ("mlp", {}),
        ("candidates", {"hidden_size": 36}),
        ("candidates", {"seq_len": 16}),
        ("conv", {}),
        ("conv", {"conv_kernel": 5, "conv_dilations": "1,2"}),
        ("conv", {"seq_len": 900, "vocab_size": 6, "h_layers": 1, "l_layers": 1}),
    ],
)
def test_flops_per_cycle_matches_a_flop_count_of_one_cycle(mixer, overrides):
    # The documented figure: forward FLOPs of one high-level cycle for one puzzle, matmuls
    # (and convolutions) only, 2 per multiply-add. Measured here with torch's flop counter.
    config = HRMConfig.preset("tiny", mixer=mixer, **overrides)
    model = HRM(config)
    x = model.embed(tokens(1, config))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.cycle(model.initial_carry(1), x)
    assert config.flops_per_cycle == pytest.approx(counter.get_total_flops(), rel=0.01)


@pytest.mark.parametrize(
    "overrides, words",
    [
        (dict(hidden_size=30, num_heads=4), "must divide"),
        (dict(hidden_size=6, num_heads=2), "even"),
        (dict(gradient="full"), "gradient"),
        (dict(mixer="transformer"), "mixer"),
        (dict(mixer="conv", seq_len=20), "not a square"),
        (dict(mixer="conv", conv_kernel=4), "odd"),
        (dict(mixer="conv", conv_kernel=0), "conv_kernel"),
        (dict(mixer="conv", conv_dilations="1,0"), "conv_dilations"),
        (dict(mixer="conv", conv_dilations="1,,2"), "conv_dilations"),
        (dict(mixer="conv", conv_dilations="two"), "conv_dilations"),
        (dict(mixer="candidates", seq_len=20), "not a square"),
        (dict(mixer="candidates", seq_len=36, hidden_size=36), "Sudoku grid"),
        (dict(mixer="candidates"), "multiple of 9"),  # hidden_size 32 into 9 digit slots
        (dict(mixer="candidates", hidden_size=36, vocab_size=9), "vocab_size"),
        (dict(loss="hinge"), "loss"),
        (dict(ema=1.0), "ema"),
        (dict(ema=-0.1), "ema"),
        (dict(h_cycles=0), "h_cycles"),
        (dict(l_layers=1.5), "l_layers"),
        (dict(rope_theta=0.0), "rope_theta"),
        (dict(halt_exploration=1.5), "halt_exploration"),
        (dict(vocab_size=1), "vocab_size"),
        (dict(q_bias_init=float("nan")), "q_bias_init"),
        (dict(compute_dtype="float16"), "compute_dtype"),
    ],
)
def test_config_rejects_bad_values_with_a_named_error(overrides, words):
    with pytest.raises(ValueError, match=words):
        HRMConfig.preset("tiny", **overrides)


def test_config_presets_overrides_and_dict_round_trip():
    with pytest.raises(ValueError, match="unknown HRM preset"):
        HRMConfig.preset("huge")
    with pytest.raises(ValueError, match="hiddn_size"):
        HRMConfig.preset("tiny", hiddn_size=64)
    config = HRMConfig.preset("small", gradient="last-cycle", mixer="mlp", ema=0.999)
    assert config.gradient == "last-cycle" and config.hidden_size == 256
    assert HRMConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown HRMConfig key"):
        HRMConfig.from_dict({**config.to_dict(), "dropout": 0.1})
    with pytest.raises(ValueError, match="JSON object"):
        HRMConfig.from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.hidden_size = 3  # type: ignore[misc]
    assert config.replace(h_cycles=1).h_cycles == 1
    assert config.max_cycles == config.h_cycles * config.max_segments
    assert config.total_seq_len == config.seq_len + 1
    grid = HRMConfig.preset("tiny", mixer="conv", conv_kernel=5, conv_dilations="1,2,4")
    assert HRMConfig.from_dict(grid.to_dict()) == grid


def test_grid_properties():
    sudoku = HRMConfig.preset("tiny", mixer="candidates", hidden_size=36)
    assert (sudoku.grid_side, sudoku.slots, sudoku.slot_size) == (9, 9, 4)
    mini = HRMConfig.preset("tiny", mixer="candidates", seq_len=16)
    assert (mini.grid_side, mini.slots, mini.slot_size) == (4, 4, 8)
    maze = HRMConfig.preset("tiny", mixer="conv", seq_len=900, vocab_size=6)
    assert (maze.grid_side, maze.slots, maze.slot_size) == (30, 1, 32)
    assert HRMConfig.preset("tiny").slots == 1  # attention: one vector per position
    assert maze.dilations == (1,)
    assert maze.replace(conv_dilations=" 1, 2,4").dilations == (1, 2, 4)
    with pytest.raises(ValueError, match="not a square"):
        HRMConfig.preset("tiny", seq_len=20).grid_side  # noqa: B018
    # The channel SwiGLU of the candidate grid is sized per slot.
    assert sudoku.mlp_width == HRMConfig.preset("tiny", hidden_size=4, num_heads=1).mlp_width


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize("gradient", ["one-step", "last-cycle"])
def test_output_and_carry_shapes(mixer, gradient):
    model = make(mixer=mixer, gradient=gradient, **MIXER_OVERRIDES[mixer])
    c = model.config
    carry = model.initial_carry(3)
    assert isinstance(carry, Carry)
    assert carry.z_H.shape == carry.z_L.shape == (3, c.seq_len + 1, c.hidden_size)
    new_carry, out = model(carry, tokens(3, c))
    assert isinstance(out, Outputs)
    assert out.logits.shape == (3, c.seq_len, c.vocab_size)
    assert out.q_halt.shape == out.q_continue.shape == (3,)
    assert new_carry.z_H.shape == carry.z_H.shape and new_carry.z_L.shape == carry.z_L.shape
    for t in (*new_carry, out.logits, out.q_halt):
        assert t.dtype == torch.float32
    x = model.embed(tokens(3, c))
    assert x.shape == (3, c.seq_len + 1, c.hidden_size)


def test_initial_carry_is_the_fixed_init_state_for_every_row():
    model = make()
    carry = model.initial_carry(4)
    assert torch.equal(carry.z_H, model.z_H0.expand_as(carry.z_H))
    assert torch.equal(carry.z_L, model.z_L0.expand_as(carry.z_L))
    assert not torch.equal(model.z_H0, model.z_L0)
    # The init states are buffers (saved, never trained).
    assert "z_H0" in model.state_dict() and all(p is not model.z_H0 for p in model.parameters())


def test_embedding_is_scaled_and_prefixed():
    model = make()
    t = tokens(2, model.config)
    x = model.embed(t)
    scale = model.config.hidden_size**0.5
    torch.testing.assert_close(x[:, 0], scale * model.prefix_embedding.expand(2, -1))
    torch.testing.assert_close(x[:, 1:], scale * model.token_embedding[t])


def test_candidate_embedding_has_three_kinds_of_slot():
    # Slot k of a cell (digit k + 1) holds one of three shared vectors: "this digit is given
    # here", "another digit is given here", "the cell is blank".
    model = make(mixer="candidates", seq_len=16)
    c = model.config
    K, d = c.slots, c.slot_size
    t = torch.tensor([[0, 1, 4, 2] + [0] * 12])
    x = model.embed(t)
    assert x.shape == (1, 17, c.hidden_size)
    scale = d**0.5
    torch.testing.assert_close(x[:, 0], scale * model.prefix_embedding.expand(1, -1))
    given, other, blank = (scale * model.candidate_embedding).unbind(0)
    slots = x[0, 1:].view(16, K, d)
    for k in range(K):
        torch.testing.assert_close(slots[0, k], blank)  # token 0
        torch.testing.assert_close(slots[1, k], given if k == 0 else other)  # digit 1
        torch.testing.assert_close(slots[2, k], given if k == 3 else other)  # digit 4
        torch.testing.assert_close(slots[3, k], given if k == 1 else other)  # digit 2


def test_bad_tokens_raise_value_errors():
    model = make()
    c = model.config
    with pytest.raises(ValueError, match="shape"):
        model.embed(torch.zeros(2, c.seq_len + 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        model.embed(torch.full((1, c.seq_len), 10))
    with pytest.raises(ValueError, match="integer"):
        model.embed(torch.zeros(1, c.seq_len))
    with pytest.raises(ValueError, match="batch_size"):
        model.initial_carry(0)


# --------------------------------------------------------------------------- Q head
def test_q_head_starts_at_zero_weight_and_bias_minus_5():
    model = make()
    assert torch.count_nonzero(model.q_head.weight) == 0
    assert torch.equal(model.q_head.bias.detach(), torch.tensor([-5.0, -5.0]))
    _, out = model(model.initial_carry(2), tokens(2, model.config))
    assert torch.equal(out.q_halt, torch.full((2,), -5.0))
    assert torch.equal(out.q_continue, torch.full((2,), -5.0))


def test_q_head_reads_the_prefix_position_and_lm_head_the_cells():
    model = make()
    with torch.no_grad():
        model.q_head.weight.normal_()
    carry = model.initial_carry(1)
    z_H = carry.z_H.clone()
    z_H[:, 1:] = torch.randn_like(z_H[:, 1:])  # change every cell, keep the prefix
    a, b = model.readout(carry), model.readout(Carry(z_H, carry.z_L))
    torch.testing.assert_close(a.q_halt, b.q_halt)
    assert not torch.allclose(a.logits, b.logits)
    z_H[:, 0] += 1.0  # now change the prefix only
    c = model.readout(Carry(z_H, carry.z_L))
    assert not torch.allclose(b.q_halt, c.q_halt)
    torch.testing.assert_close(b.logits, c.logits)


# --------------------------------------------------------------------------- carry
def test_forward_detaches_the_incoming_and_the_returned_carry():
    model = make()
    c = model.config
    carry = model.initial_carry(2)
    leaf_H = carry.z_H.clone().requires_grad_(True)
    leaf_L = carry.z_L.clone().requires_grad_(True)
    new_carry, out = model(Carry(leaf_H, leaf_L), tokens(2, c))
    assert new_carry.z_H.grad_fn is None and not new_carry.z_H.requires_grad
    assert new_carry.z_L.grad_fn is None and not new_carry.z_L.requires_grad
    out.logits.square().sum().backward()
    assert leaf_H.grad is None and leaf_L.grad is None  # nothing flowed into the old segment
    assert model.lm_head.weight.grad is not None


def test_a_second_segment_continues_from_the_first():
    model = make()
    t = tokens(2, model.config)
    with torch.no_grad():
        carry1, out1 = model(model.initial_carry(2), t)
        carry2, out2 = model(carry1, t)
        again1, _ = model(model.initial_carry(2), t)
    torch.testing.assert_close(carry1.z_H, again1.z_H)  # deterministic
    assert not torch.allclose(carry1.z_H, carry2.z_H)
    assert not torch.allclose(out1.logits, out2.logits)


def test_reset_carry_resets_only_masked_rows():
    model = make()
    t = tokens(3, model.config)
    with torch.no_grad():
        carry, _ = model(model.initial_carry(3), t)
    fresh = model.initial_carry(3)
    mask = torch.tensor([True, False, True])
    reset = model.reset_carry(carry, mask)
    for new, old, init in zip(reset, carry, fresh, strict=True):
        assert torch.equal(new[mask], init[mask])
        assert torch.equal(new[~mask], old[~mask])
    with pytest.raises(ValueError, match="mask"):
        model.reset_carry(carry, torch.tensor([True, False]))


@pytest.mark.parametrize("gradient", ["one-step", "last-cycle"])
def test_segment_is_n_cycles_and_modes_agree_without_grad(gradient):
    model = make(gradient=gradient)
    c = model.config
    x = model.embed(tokens(2, c))
    with torch.no_grad():
        seg = model.segment(model.initial_carry(2), x)
        manual = model.initial_carry(2)
        for _ in range(c.h_cycles):
            manual = model.cycle(manual, x)
        other = make(gradient="last-cycle" if gradient == "one-step" else "one-step")
        other.load_state_dict(model.state_dict())
        seg_other = other.segment(model.initial_carry(2), x)
    torch.testing.assert_close(seg.z_H, manual.z_H)
    torch.testing.assert_close(seg.z_L, manual.z_L)
    torch.testing.assert_close(seg.z_H, seg_other.z_H)


# --------------------------------------------------------------------------- gradients
def _count_graph_applications(model: HRM, **kw) -> tuple[int, int, int, int]:
    """Run one segment + loss; count L/H applications that were recorded by autograd."""
    calls = {"L": [], "H": []}

    def recorder(name):
        def hook(module, args, output):
            calls[name].append(output.requires_grad)

        return hook

    handles = [
        model.L_level.register_forward_hook(recorder("L")),
        model.H_level.register_forward_hook(recorder("H")),
    ]
    try:
        _, out = model(model.initial_carry(2), tokens(2, model.config))
    finally:
        for h in handles:
            h.remove()
    return sum(calls["L"]), len(calls["L"]), sum(calls["H"]), len(calls["H"])


def test_one_step_gradient_uses_only_the_last_L_and_last_H_update():
    model = make(gradient="one-step", h_cycles=2, l_cycles=2)
    l_grad, l_total, h_grad, h_total = _count_graph_applications(model)
    assert (l_total, h_total) == (4, 2)  # N*T low-level and N high-level updates ran
    assert (l_grad, h_grad) == (1, 1)  # ...but only one of each is in the graph


def test_last_cycle_gradient_uses_the_whole_last_cycle():
    model = make(gradient="last-cycle", h_cycles=3, l_cycles=2)
    l_grad, l_total, h_grad, h_total = _count_graph_applications(model)
    assert (l_total, h_total) == (6, 3)
    assert (l_grad, h_grad) == (2, 1)  # T L-updates and one H-update of the last cycle


def _grads(model: HRM, t: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    _, out = model(model.initial_carry(t.shape[0]), t)
    (out.logits.log_softmax(-1)[..., 3].mean() + out.q_halt.sum()).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("gradient", ["one-step", "last-cycle"])
def test_gradients_match_a_hand_built_graph(gradient):
    model = make(gradient=gradient)
    c = model.config
    t = tokens(2, c)
    got = _grads(model, t)
    # Every level's weights and the embedding receive gradient.
    for name in ("L_level.blocks.0.mlp.down.weight", "H_level.blocks.1.mixer.qkv.weight"):
        assert got[name].abs().sum() > 0
    assert got["token_embedding"].abs().sum() > 0

    # Hand-built: everything without grad up to the start of the differentiated part.
    model.zero_grad(set_to_none=True)
    x = model.embed(t)
    carry = model.initial_carry(2)
    with torch.no_grad():
        for _ in range(c.h_cycles - 1):
            carry = model.cycle(carry, x)
        if gradient == "one-step":
            for _ in range(c.l_cycles - 1):
                carry = Carry(carry.z_H, model.L_level(carry.z_L, carry.z_H + x, model.rotary))
    n_grad_L = 1 if gradient == "one-step" else c.l_cycles
    z_H, z_L = carry
    for _ in range(n_grad_L):
        z_L = model.L_level(z_L, z_H + x, model.rotary)
    z_H = model.H_level(z_H, z_L, model.rotary)
    out = model.readout(Carry(z_H, z_L))
    (out.logits.log_softmax(-1)[..., 3].mean() + out.q_halt.sum()).backward()
    want = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], msg=name)


def test_gradient_modes_give_different_gradients():
    one = make(gradient="one-step")
    last = make(gradient="last-cycle")
    last.load_state_dict(one.state_dict())
    t = tokens(2, one.config)
    g1, g2 = _grads(one, t), _grads(last, t)
    name = "L_level.blocks.0.mlp.gate_up.weight"
    assert not torch.allclose(g1[name], g2[name])


# --------------------------------------------------------------------------- init & misc
def test_seeded_init_is_reproducible():
    a, b, c = make(seed=3), make(seed=3), make(seed=4)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name
    assert not torch.equal(a.L_level.blocks[0].mlp.down.weight, c.L_level.blocks[0].mlp.down.weight)


def test_linear_init_is_truncated_lecun():
    config = HRMConfig.preset("small", h_layers=1, l_layers=1)
    model = HRM(config, generator=torch.Generator().manual_seed(0))
    w = model.L_level.blocks[0].mlp.gate_up.weight  # fan_in 256
    std = 1 / 256**0.5
    assert abs(w.std().item() - std) < 0.03 * std
    assert w.abs().max().item() <= 2 * std / 0.8796 + 1e-6  # truncated at 2 sigma


def test_rotary_is_a_rotation_that_depends_on_position():
    rot = Rotary(head_dim=8, positions=5, theta=10000.0)
    x = torch.randn(2, 3, 5, 8)
    y = rot(x)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(y[..., 0, :], x[..., 0, :])  # position 0 is not rotated
    same = x[..., :1, :].expand_as(x)  # one vector at every position
    ys = rot(same)
    assert not torch.allclose(ys[..., 1, :], ys[..., 2, :])


def test_mlp_mixer_has_no_rotary_and_mixes_tokens():
    model = make(mixer="mlp")
    assert model.rotary is None
    c = model.config
    t = tokens(1, c)
    t2 = t.clone()
    t2[0, 0] = (t[0, 0] + 1) % c.vocab_size  # change one cell
    with torch.no_grad():
        _, a = model(model.initial_carry(1), t)
        _, b = model(model.initial_carry(1), t2)
    assert not torch.allclose(a.logits[0, -1], b.logits[0, -1])  # reached the last cell


def test_enable_compile_keeps_outputs():
    model = make()
    t = tokens(2, model.config)
    with torch.no_grad():
        _, ref = model(model.initial_carry(2), t)
        model.enable_compile(backend="eager")
        _, out = model(model.initial_carry(2), t)
    torch.testing.assert_close(out.logits, ref.logits)


def test_bf16_autocast_keeps_the_carry_and_outputs_float32():
    # CPU autocast stands in for the CUDA path (which the model enters by itself on a GPU):
    # matmuls run in bf16, but norms, carry and outputs stay float32 and close to fp32.
    model = make()
    t = tokens(2, model.config)
    with torch.no_grad():
        _, ref = model(model.initial_carry(2), t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            carry, out = model(model.initial_carry(2), t)
    assert carry.z_H.dtype == carry.z_L.dtype == torch.float32
    assert out.logits.dtype == out.q_halt.dtype == torch.float32
    assert (out.logits - ref.logits).abs().max() < 0.25
    assert not torch.equal(out.logits, ref.logits)  # bf16 really was used


# --------------------------------------------------------------------------- grid mixers
def _dependence(fn, config: HRMConfig, width: int | None = None, seed: int = 0) -> torch.Tensor:
    """``diff[i, p, s]``: how much output slot s of position p moves when the input of cell i
    is perturbed (one batch row per cell i; ``width`` splits the channels into slots)."""
    S, D = config.seq_len, config.hidden_size
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, S + 1, D, generator=g)
    batch = x.repeat(S, 1, 1)
    batch[torch.arange(S), 1 + torch.arange(S)] += torch.randn(S, D, generator=g)
    with torch.no_grad():
        diff = (fn(batch) - fn(x)).abs()
    return diff.view(S, S + 1, -1, width or D).amax(-1)


def _window(side: int, kernel: int, dilation: int) -> torch.Tensor:
    """(S, S) bool: cell j is within the dilated kernel window of cell i."""
    r, c = torch.arange(side).repeat_interleave(side), torch.arange(side).repeat(side)
    dr, dc = r[None, :] - r[:, None], c[None, :] - c[:, None]
    reach = dilation * (kernel // 2)

    def ok(o: torch.Tensor) -> torch.Tensor:
        return (o.abs() <= reach) & (o % dilation == 0)

    return ok(dr) & ok(dc)


def _peers(side: int) -> torch.Tensor:
    """(S, S) bool: the cells share a row, a column or a box (a cell is its own peer)."""
    box = math.isqrt(side)
    r, c = torch.arange(side).repeat_interleave(side), torch.arange(side).repeat(side)
    b = (r // box) * box + c // box
    return (r[:, None] == r) | (c[:, None] == c) | (b[:, None] == b)


def _assert_reach(diff: torch.Tensor, expected: torch.Tensor) -> None:
    """Perturbations change exactly the expected outputs (and leave the rest bit-for-bit)."""
    assert diff[expected].min() > 1e-4
    assert diff[~expected].max() <= 1e-6


def _grid_config(mixer: str, **overrides) -> HRMConfig:
    return HRMConfig.preset(
        "tiny", **{"mixer": mixer, "hidden_size": 8, "num_heads": 1, **overrides}
    )


@pytest.mark.parametrize(
    "kernel, dilation, mix",
    [(3, 1, "depthwise"), (3, 2, "depthwise"), (5, 1, "depthwise"), (3, 1, "full")],
)
def test_conv_block_is_local(kernel, dilation, mix):
    config = _grid_config("conv", conv_kernel=kernel, conv_dilations=str(dilation), conv_mix=mix)
    block = Block(config, generator=torch.Generator().manual_seed(0))
    assert block.mixer.dilation == dilation
    diff = _dependence(lambda x: block(x, None), config)[..., 0]  # (S perturbed, 1 + S)
    # A cell's output moves exactly when a cell of its (dilated) k x k window moved.
    _assert_reach(diff[:, 1:], _window(9, kernel, dilation))
    # The prefix summarises every cell.
    assert diff[:, 0].min() > 1e-6


def test_conv_module_cycles_dilations_and_their_reach_adds_up():
    config = _grid_config("conv", conv_dilations="1,2")
    module = ReasoningModule(config, 3, generator=torch.Generator().manual_seed(0))
    assert [b.mixer.dilation for b in module.blocks] == [1, 2, 1]
    two = ReasoningModule(config, 2, generator=torch.Generator().manual_seed(0))
    zero = torch.zeros(1, config.total_seq_len, config.hidden_size)
    diff = _dependence(lambda z: two(z, zero.expand_as(z), None), config)[..., 0]
    # Dilation 1 then 2: a 3x3 window, then every other cell of a 5x5 one -> offsets up to 3.
    one_then_two = (_window(9, 3, 1).int() @ _window(9, 3, 2).int()) > 0
    assert one_then_two.sum(1).max() == 49  # the full 7x7 square
    _assert_reach(diff[:, 1:], one_then_two)


def test_conv_prefix_reads_the_mean_of_the_cells_and_cells_never_read_the_prefix():
    config = _grid_config("conv")
    block = Block(config, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, config.total_seq_len, config.hidden_size, generator=g)
    # The mixer's prefix output is the summary map of the mean cell.
    mixer = block.mixer
    assert isinstance(mixer, ConvMixer)
    with torch.no_grad():
        torch.testing.assert_close(mixer(x, None)[:, 0], mixer.summary(x[:, 1:].mean(1)))
        # So the block's prefix output ignores where the cells are (any reordering) ...
        shuffled = torch.cat((x[:, :1], x[:, 1 + torch.randperm(81, generator=g)]), dim=1)
        torch.testing.assert_close(block(shuffled, None)[:, 0], block(x, None)[:, 0])
        # ... and the cells do not see the prefix at all.
        moved = x.clone()
        moved[:, 0] += torch.randn(config.hidden_size, generator=g)
        a, b = block(x, None), block(moved, None)
    assert torch.equal(a[:, 1:], b[:, 1:])
    assert not torch.allclose(a[:, 0], b[:, 0])


def test_conv_mixer_runs_on_the_maze_grid():
    model = make(mixer="conv", seq_len=900, vocab_size=6, conv_dilations="1,2,4")
    c = model.config
    with torch.no_grad():
        _, out = model(model.initial_carry(1), tokens(1, c))
    assert out.logits.shape == (1, 900, 6)
    assert torch.isfinite(out.logits).all()


def test_candidate_block_mixes_only_peers_and_each_digit_with_itself():
    config = _grid_config("candidates", seq_len=81, hidden_size=18)  # 9 slots of 2
    K = config.slots
    block = Block(config, generator=torch.Generator().manual_seed(0))
    diff = _dependence(lambda x: block(x, None), config, width=config.slot_size)
    # Whole cells perturbed: a cell's output moves exactly when a peer (or itself) moved.
    _assert_reach(diff[:, 1:].amax(-1), _peers(9))
    assert diff[:, 0].amin() > 1e-6  # the prefix summarises every cell

    # One slot (digit 3) of cell 0 perturbed: in its peers only digit 3 moves; in the cell
    # itself every digit moves (they share the cell's mean).
    w = config.slot_size
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, config.total_seq_len, config.hidden_size, generator=g)
    moved = x.clone()
    moved[0, 1, 2 * w : 3 * w] += 1.0  # position 1 is cell 0; slot 2 is digit 3
    with torch.no_grad():
        d = (block(moved, None) - block(x, None)).abs().view(82, K, w).amax(-1)[1:]  # (S, K)
    peers = _peers(9)[0].clone()
    peers[0] = False  # cell 0 itself
    assert d[0].min() > 1e-4
    assert d[peers, 2].min() > 1e-4
    assert d[peers][:, [k for k in range(K) if k != 2]].max() <= 1e-6
    assert d[~peers][1:].max() <= 1e-6  # the cells that share no unit with cell 0
    # And the cells do not read the prefix.
    moved = x.clone()
    moved[0, 0] += 1.0
    with torch.no_grad():
        assert torch.equal(block(moved, None)[:, 1:], block(x, None)[:, 1:])


def test_candidate_block_is_equivariant_to_relabelling_digits():
    # The layer itself: permuting the digit slots of the input permutes those of the output.
    config = _grid_config("candidates", seq_len=81, hidden_size=18)
    K, d = config.slots, config.slot_size
    block = Block(config, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, config.total_seq_len, config.hidden_size, generator=g)
    perm = torch.randperm(K, generator=g)

    def relabel(z: torch.Tensor) -> torch.Tensor:
        return z.view(2, -1, K, d)[:, :, perm].reshape(z.shape)

    with torch.no_grad():
        torch.testing.assert_close(block(relabel(x), None), relabel(block(x, None)))


def _candidate_model(seq_len: int = 81, seed: int = 0) -> HRM:
    side = math.isqrt(seq_len)
    return make(seed=seed, mixer="candidates", seq_len=seq_len, hidden_size=4 * side)


def _logits(model: HRM, t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        carry = model.initial_carry(t.shape[0])
        carry, _ = model(carry, t)  # two segments: the carry is part of what must commute
        _, out = model(carry, t)
    return out.logits


def _sudoku_like_tokens(batch: int, seq_len: int, seed: int = 3) -> torch.Tensor:
    """Grids with about half the cells given (any digit) and the rest blank."""
    g = torch.Generator().manual_seed(seed)
    side = math.isqrt(seq_len)
    digits = torch.randint(1, side + 1, (batch, seq_len), generator=g)
    return torch.where(torch.rand(batch, seq_len, generator=g) < 0.5, digits, 0)


def test_candidate_model_is_equivariant_to_relabelling_digits():
    model = _candidate_model()
    t = _sudoku_like_tokens(2, 81)
    g = torch.Generator().manual_seed(4)
    relabel = torch.cat((torch.tensor([0]), 1 + torch.randperm(9, generator=g)))  # 0 stays 0
    a, b = _logits(model, t), _logits(model, relabel[t])
    # Digit k's logit for the original puzzle is digit relabel[k]'s for the relabelled one.
    torch.testing.assert_close(b[..., relabel], a, atol=1e-4, rtol=1e-4)


def _grid_permutations(side: int) -> dict[str, torch.Tensor]:
    """Index maps (new cell -> old cell) of some Sudoku symmetries of a side x side grid."""
    box = math.isqrt(side)
    cells = torch.arange(side * side).view(side, side)
    rows = torch.arange(side)
    swap_rows = rows.clone()
    swap_rows[[0, 1]] = rows[[1, 0]]  # two rows of the first band
    bands = torch.cat([torch.arange(box) + box * b for b in reversed(range(box))])
    return {
        "rows within a band": cells[swap_rows].reshape(-1),
        "bands": cells[bands].reshape(-1),
        "columns within a stack": cells[:, swap_rows].reshape(-1),
        "transpose": cells.T.reshape(-1),
    }


@pytest.mark.parametrize("seq_len", [81, 16])
@pytest.mark.parametrize(
    "symmetry", ["rows within a band", "bands", "columns within a stack", "transpose"]
)
def test_candidate_model_is_equivariant_to_the_grid_symmetries(seq_len, symmetry):
    model = _candidate_model(seq_len)
    t = _sudoku_like_tokens(2, seq_len)
    index = _grid_permutations(math.isqrt(seq_len))[symmetry]
    a, b = _logits(model, t), _logits(model, t[:, index])
    torch.testing.assert_close(b, a[:, index], atol=1e-4, rtol=1e-4)


def test_candidate_grid_on_mini_sudoku_answers_only_digits_1_to_4():
    model = _candidate_model(16)
    c = model.config
    assert (c.vocab_size, c.slots) == (10, 4)
    t = _sudoku_like_tokens(3, 16)
    carry, out = model(model.initial_carry(3), t)
    assert out.logits.shape == (3, 16, 10)
    digits = out.logits[..., 1:5]
    absent = out.logits[..., [0, 5, 6, 7, 8, 9]]
    assert torch.isfinite(out.logits).all()
    assert absent.max() < digits.min() - 1000  # far below every digit's score
    assert set(out.logits.argmax(-1).unique().tolist()) <= {1, 2, 3, 4}
    # Both cell losses stay finite, and so do their gradients.
    target = torch.randint(1, 5, (3, 16), generator=torch.Generator().manual_seed(0))
    for loss_fn in (stablemax_cross_entropy, softmax_cross_entropy):
        model.zero_grad(set_to_none=True)
        _, out = model(model.initial_carry(3), t)
        loss = loss_fn(out.logits, target).mean()
        loss.backward()
        assert torch.isfinite(loss)
        for name, p in model.named_parameters():
            if p.grad is not None:
                assert torch.isfinite(p.grad).all(), name
        assert model.candidate_embedding.grad.abs().sum() > 0
        assert model.lm_head.weight.grad.abs().sum() > 0


def test_candidate_readout_is_one_score_per_digit_slot():
    model = _candidate_model(16)
    with torch.no_grad():
        model.lm_head.weight.normal_()
    d = model.config.slot_size
    carry = model.initial_carry(1)
    z_H = carry.z_H.clone()
    z_H[0, 3, d : 2 * d] += 1.0  # slot 1 (digit 2) of cell 2 (position 3) only
    a, b = model.readout(carry).logits, model.readout(Carry(z_H, carry.z_L)).logits
    moved = (a - b).abs() > 0
    assert moved.nonzero().tolist() == [[0, 2, 2]]


# --------------------------------------------------------------------------- output mask
def _maze_model(seed: int = 0, **overrides) -> tuple[HRM, torch.Tensor]:
    from hrm_env.puzzles.tasks import get_task

    task = get_task("maze")
    fields = dict(vocab_size=6, seq_len=900, mixer="conv", hidden_size=16, expansion=2.0)
    fields.update(output_choices=task.output_choices, **overrides)
    model = make(seed, **fields)
    batch = task.sample(np.random.default_rng(seed), 3, "easy")
    return model, torch.from_numpy(batch.inputs.astype(np.int64))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_output_mask_copies_walls_start_and_goal_and_opens_only_path_or_open(seed):
    model, puzzles = _maze_model(seed)
    with torch.no_grad():
        # Large random weights in the head: the mask, not the training, must keep the copy.
        model.lm_head.weight.normal_(0, 10.0, generator=torch.Generator().manual_seed(seed))
        carry, out = model(model.initial_carry(len(puzzles)), puzzles)
    answer = out.logits.argmax(-1)
    open_cells = puzzles == 2  # maze.OPEN
    assert torch.equal(answer[~open_cells], puzzles[~open_cells])
    assert set(answer[open_cells].unique().tolist()) <= {2, 5}  # open or path
    assert torch.equal(model.answer_cells(puzzles), open_cells)


def test_output_mask_loss_counts_only_the_cells_that_choose():
    from hrm_agent.losses import hrm_loss

    model, puzzles = _maze_model()
    with torch.no_grad():
        _, out = model(model.initial_carry(len(puzzles)), puzzles)
    mask = model.answer_cells(puzzles)
    labels = puzzles.clone()
    parts = hrm_loss(out, labels, mask=mask, loss="softmax", reduction="none")
    wrong = labels.clone()
    wrong[~mask] = 1  # a cell that cannot choose: changing its label changes nothing
    assert torch.equal(
        hrm_loss(out, wrong, mask=mask, loss="softmax", reduction="none").lm, parts.lm
    )
    # Averaged over the open cells only: the mean of their per-cell losses.
    cell = softmax_cross_entropy(out.logits, labels)
    expected = (cell * mask).sum(-1) / mask.sum(-1)
    torch.testing.assert_close(parts.lm, expected)


def test_output_mask_readout_needs_the_puzzle_and_round_trips_through_json():
    import json

    model, puzzles = _maze_model()
    with pytest.raises(ValueError, match="output mask"):
        model.readout(model.initial_carry(1))
    config = model.config
    assert HRMConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.num_parameters == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "choices, words",
    [
        (((0,), (1,)), "one tuple of tokens per input token"),
        (((0,), (1,), (2, 9), (3,), (4,), (5,)), r"output_choices\[2\]"),
        (((0,), (), (2,), (3,), (4,), (5,)), r"output_choices\[1\]"),
    ],
)
def test_output_mask_rejects_bad_tables(choices, words):
    with pytest.raises(ValueError, match=words):
        HRMConfig.preset("tiny", vocab_size=6, seq_len=900, mixer="conv", output_choices=choices)


def test_full_conv_mixes_channels_and_depthwise_does_not():
    g = torch.Generator().manual_seed(3)
    for mix, mixes in (("depthwise", False), ("full", True)):
        config = _grid_config("conv", conv_mix=mix)
        mixer = ConvMixer(config, 1, generator=torch.Generator().manual_seed(0))
        x = torch.randn(1, config.total_seq_len, config.hidden_size, generator=g)
        moved = x.clone()
        moved[:, 1:, 0] += 1.0  # channel 0 of every cell
        with torch.no_grad():
            diff = (mixer(moved, None) - mixer(x, None))[:, 1:, 1:].abs().max()
        assert (diff > 1e-6) == mixes, mix
    full = HRMConfig.preset("tiny", mixer="conv", conv_mix="full")
    assert full.num_parameters == sum(p.numel() for p in HRM(full).parameters())


@pytest.mark.parametrize("mixer", MIXERS)
def test_zero_init_residual_block_is_the_identity_at_step_zero(mixer):
    config = HRMConfig.preset(
        "tiny", mixer=mixer, zero_init_residual=True, **MIXER_OVERRIDES[mixer]
    )
    block = Block(config, generator=torch.Generator().manual_seed(0))
    x = torch.randn(
        2, config.total_seq_len, config.hidden_size, generator=torch.Generator().manual_seed(1)
    )
    if config.slots > 1:  # the candidate grid normalises each digit slot
        x = x.view(2, config.total_seq_len, config.slots, -1)
    x = x * torch.rsqrt(x.square().mean(-1, keepdim=True))  # a unit-RMS input, as post-norm gives
    x = x.reshape(2, config.total_seq_len, config.hidden_size)
    rotary = HRM(config).rotary
    with torch.no_grad():
        torch.testing.assert_close(block(x, rotary), x, atol=1e-5, rtol=1e-5)
    # Without the flag the same block changes its input.
    plain = Block(
        config.replace(zero_init_residual=False), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        assert not torch.allclose(plain(x, rotary), x, atol=1e-3)
    # And it still learns: the zeroed weights get gradient.
    out = block(x.requires_grad_(), rotary)
    out.square().sum().backward()
    assert block.mlp.down.weight.grad.abs().max() > 0


def test_aux_head_reads_the_cells_and_is_counted():
    model, puzzles = _maze_model(aux_target="distance3", aux_classes=4)
    with torch.no_grad():
        _, out = model(model.initial_carry(len(puzzles)), puzzles)
    assert out.aux_logits.shape == (len(puzzles), 900, 4)
    assert model.config.num_parameters == sum(p.numel() for p in model.parameters())
    plain, _ = _maze_model()
    with torch.no_grad():
        _, none = plain(plain.initial_carry(len(puzzles)), puzzles)
    assert none.aux_logits is None
    with pytest.raises(ValueError, match="aux_target and aux_classes go together"):
        HRMConfig.preset("tiny", aux_target="distance3")


# ---------------------------------------------------------------------- max aggregation
def _reference_neighbour_max(grid: torch.Tensor, open_cells: torch.Tensor) -> torch.Tensor:
    """The masked 4-neighbour max, one cell at a time."""
    B, D, n, _ = grid.shape
    out = torch.zeros_like(grid)
    for b in range(B):
        for r in range(n):
            for c in range(n):
                reads = [
                    grid[b, :, rr, cc]
                    for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))
                    if 0 <= rr < n and 0 <= cc < n and open_cells[b, 0, rr, cc]
                ]
                if reads:
                    out[b, :, r, c] = torch.stack(reads).amax(0)
    return out


def test_neighbour_max_reads_only_open_4_neighbours_and_never_a_wall():
    from hrm_agent.layers import neighbour_max

    g = torch.Generator().manual_seed(0)
    grid = torch.randn(2, 3, 6, 6, generator=g)
    open_cells = torch.rand(2, 1, 6, 6, generator=g) > 0.4
    open_cells[0, 0, 0, 1] = open_cells[0, 0, 1, 0] = False  # a cell with no open neighbour
    got = neighbour_max(grid, open_cells)
    torch.testing.assert_close(got, _reference_neighbour_max(grid, open_cells), atol=0, rtol=0)
    assert torch.equal(got[0, :, 0, 0], torch.zeros(3))
    walls = ~open_cells
    # A wall's features, however large, reach no cell; an open cell's reach its 4 neighbours.
    louder = grid + 100.0 * walls
    assert torch.equal(neighbour_max(louder, open_cells), got)
    b, r, c = 1, 2, 3
    open_cells[b, 0, r, c] = True
    moved = grid.clone()
    moved[b, :, r, c] = 100.0
    diff = (neighbour_max(moved, open_cells) - neighbour_max(grid, open_cells)).abs().amax(1)
    changed = {tuple(i) for i in torch.nonzero(diff[b] > 0).tolist()}
    assert changed == {(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)}
    assert diff[1 - b].max() == 0


def test_max_aggregation_starts_as_the_plain_block_and_its_gate_learns():
    model, puzzles = _maze_model(max_aggregation=(1,))
    plain, _ = _maze_model()
    assert model.config.num_parameters == sum(p.numel() for p in model.parameters())
    assert model.config.num_parameters == plain.config.num_parameters + (16 // 4) * 4
    with torch.no_grad():
        _, a = model(model.initial_carry(len(puzzles)), puzzles)
        _, b = plain(plain.initial_carry(len(puzzles)), puzzles)
    torch.testing.assert_close(a.logits, b.logits, atol=0, rtol=0)  # every gate starts at 0
    _, out = model(model.initial_carry(len(puzzles)), puzzles)
    out.logits[..., 5].sum().backward()
    assert model.L_level.blocks[0].mixer.max_gate.grad.abs().max() > 0
    # With open gates the answer depends on which cells are walls through the max too.
    with torch.no_grad():
        for block in (*model.L_level.blocks, *model.H_level.blocks):
            block.mixer.max_gate.fill_(1.0)
        x = model.embed(puzzles)
        carry = model.initial_carry(len(puzzles))
        walls_as_given = model.cycle(carry, x, puzzles).z_H
        model.wall_table[1] = False  # nothing is a wall any more
        no_walls = model.cycle(carry, x, puzzles).z_H
    assert not torch.allclose(walls_as_given, no_walls)


def test_max_aggregation_needs_the_puzzle_tokens_and_a_conv_mixer():
    model, puzzles = _maze_model(max_aggregation=(1,))
    x = model.embed(puzzles)
    with pytest.raises(ValueError, match="pass the puzzle tokens"):
        model.cycle(model.initial_carry(len(puzzles)), x)
    with pytest.raises(ValueError, match="needs the conv mixer"):
        HRMConfig.preset("tiny", mixer="attention", max_aggregation=(1,))
    for bad in ((), (10,), (True,), [1]):
        with pytest.raises(ValueError, match="max_aggregation must be"):
            HRMConfig.preset("tiny", vocab_size=6, seq_len=900, mixer="conv", max_aggregation=bad)
    config = model.config
    assert HRMConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_closed_walls_pass_nothing_across_a_wall():
    """Two mazes that differ only right of a full wall column: with closed walls every cell left
    of it computes the same state, cycle after cycle; a plain conv lets the difference in."""
    from hrm_env.puzzles import maze

    grid = np.full((maze.SIDE, maze.SIDE), maze.OPEN, dtype=np.int64)
    grid[:, 14] = maze.WALL
    grid[3, 2], grid[20, 9] = maze.START, maze.GOAL
    other = grid.copy()
    other[5:25:3, 16:29:2] = maze.WALL  # a different right half
    puzzles = torch.from_numpy(np.stack([grid.reshape(-1), other.reshape(-1)]))
    left = torch.from_numpy(np.arange(maze.SIDE) < 14).repeat(maze.SIDE)  # (S,)
    for closed, isolated in ((None, False), ((maze.WALL,), True)):
        model, _ = _maze_model(closed_walls=closed)
        with torch.no_grad():
            x = model.embed(puzzles)
            carry = model.initial_carry(2)
            for _ in range(4):
                carry = model.cycle(carry, x, puzzles)
        cells = carry.z_H[:, 1:]  # (2, S, D)
        gap = (cells[0, left] - cells[1, left]).abs().max().item()
        assert (gap < 1e-5) == isolated, (closed, gap)


def test_closed_walls_are_checked_and_round_trip():
    model, puzzles = _maze_model(closed_walls=(1,))
    with pytest.raises(ValueError, match="pass the puzzle tokens"):
        model.cycle(model.initial_carry(len(puzzles)), model.embed(puzzles))
    with pytest.raises(ValueError, match="closed_walls needs the conv mixer"):
        HRMConfig.preset("tiny", mixer="attention", closed_walls=(1,))
    base = dict(vocab_size=6, seq_len=900, mixer="conv")
    with pytest.raises(ValueError, match="closed_walls must be"):
        HRMConfig.preset("tiny", closed_walls=(), **base)
    with pytest.raises(ValueError, match="the same wall tokens"):
        HRMConfig.preset("tiny", closed_walls=(1,), max_aggregation=(1, 2), **base)
    both = HRMConfig.preset("tiny", closed_walls=(1,), max_aggregation=(1,), **base)
    assert HRMConfig.from_dict(json.loads(json.dumps(both.to_dict()))) == both
    # No new parameters: the flag changes what the convolution reads, not what it learns.
    plain, _ = _maze_model()
    assert sum(p.numel() for p in plain.parameters()) == sum(p.numel() for p in model.parameters())
