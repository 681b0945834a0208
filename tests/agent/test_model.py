"""HRM model and config: shapes, gradient paths per mode, carry handling, init, presets."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hrm_agent.config import HRMConfig
from hrm_agent.layers import Rotary
from hrm_agent.model import HRM, Carry, Outputs


def make(seed: int = 0, **overrides) -> HRM:
    config = HRMConfig.preset("tiny", **overrides)
    return HRM(config, generator=torch.Generator().manual_seed(seed))


def tokens(batch: int, config: HRMConfig, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (batch, config.seq_len), generator=g)


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


@settings(max_examples=15, deadline=None)
@given(
    heads=st.sampled_from([1, 2, 4]),
    head_dim=st.sampled_from([2, 4, 8]),
    layers=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    mixer=st.sampled_from(["attention", "mlp"]),
    seq_len=st.integers(1, 20),
    vocab=st.integers(2, 12),
    expansion=st.sampled_from([1.0, 2.0, 4.0]),
)
def test_num_parameters_property_counts_the_built_model(
    heads, head_dim, layers, mixer, seq_len, vocab, expansion
):
    config = HRMConfig(
        hidden_size=heads * head_dim,
        num_heads=heads,
        h_layers=layers[0],
        l_layers=layers[1],
        mixer=mixer,
        seq_len=seq_len,
        vocab_size=vocab,
        expansion=expansion,
        multiple_of=8,
    )
    assert sum(p.numel() for p in HRM(config).parameters()) == config.num_parameters


@pytest.mark.parametrize(
    "overrides, words",
    [
        (dict(hidden_size=30, num_heads=4), "must divide"),
        (dict(hidden_size=6, num_heads=2), "even"),
        (dict(gradient="full"), "gradient"),
        (dict(mixer="conv"), "mixer"),
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


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("mixer", ["attention", "mlp"])
@pytest.mark.parametrize("gradient", ["one-step", "last-cycle"])
def test_output_and_carry_shapes(mixer, gradient):
    model = make(mixer=mixer, gradient=gradient)
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
