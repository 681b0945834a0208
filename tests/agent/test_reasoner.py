"""TorchReasoner: the env protocol over the real model; load_pretrained's errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hrm_agent.checkpoint import save_checkpoint
from hrm_agent.config import HRMConfig
from hrm_agent.model import HRM
from hrm_agent.reasoner import TorchReasoner, TorchState, load_pretrained
from hrm_env.envs.reasoner import CycleOutput, Reasoner


@pytest.fixture
def model() -> HRM:
    m = HRM(HRMConfig.preset("tiny"), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        m.q_head.weight.normal_(generator=torch.Generator().manual_seed(1))  # non-trivial Q
    return m


def puzzles(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, size=(batch, 81), dtype=np.uint8)


def test_implements_the_protocol_with_numpy_outputs(model):
    r = TorchReasoner(model, "sudoku")
    assert isinstance(r, Reasoner)
    assert (r.task, r.seq_len, r.vocab_size, r.latent_size) == ("sudoku", 81, 10, 32)
    state = r.reset(puzzles(3))
    state, out = r.cycle(state)
    assert isinstance(out, CycleOutput)
    assert out.logits.shape == (3, 81, 10) and out.logits.dtype == np.float32
    assert out.q.shape == (3, 2) and out.q.dtype == np.float32
    assert out.latent.shape == (3, 32) and out.latent.dtype == np.float32
    assert state.cycles.tolist() == [1, 1, 1]


def test_one_call_is_one_high_level_cycle_of_the_model(model):
    r = TorchReasoner(model, "sudoku")
    p = puzzles(2)
    state = r.reset(p)
    outs = []
    for _ in range(3):
        state, out = r.cycle(state)
        outs.append(out)
    with torch.no_grad():
        x = model.embed(torch.from_numpy(p.astype(np.int64)))
        carry = model.initial_carry(2)
        for _ in range(3):
            carry = model.cycle(carry, x)
        ref = model.readout(carry)
    np.testing.assert_allclose(outs[-1].logits, ref.logits.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[-1].q[:, 0], ref.q_halt.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[-1].q[:, 1], ref.q_continue.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        outs[-1].latent, carry.z_H[:, 1:].mean(1).numpy(), rtol=1e-5, atol=1e-5
    )
    assert not np.allclose(outs[0].logits, outs[1].logits)  # the state does advance


def test_cycle_leaves_the_old_state_untouched(model):
    r = TorchReasoner(model, "sudoku")
    s0 = r.reset(puzzles(2))
    z0 = s0.carry.z_H.clone()
    s1, _ = r.cycle(s0)
    assert torch.equal(s0.carry.z_H, z0) and s0.cycles.tolist() == [0, 0]
    _, again = r.cycle(s0)
    _, first = r.cycle(r.reset(puzzles(2)))
    np.testing.assert_array_equal(again.logits, first.logits)


def test_reset_with_mask_only_resets_masked_rows(model):
    r = TorchReasoner(model, "sudoku")
    old, new = puzzles(3, seed=1), puzzles(3, seed=2)
    state = r.reset(old)
    for _ in range(2):
        state, before = r.cycle(state)
    mask = np.array([True, False, True])
    state = r.reset(new, state=state, mask=mask)
    assert isinstance(state, TorchState)
    np.testing.assert_array_equal(state.inputs, np.where(mask[:, None], new, old))
    assert state.cycles.tolist() == [0, 2, 0]
    state, after = r.cycle(state)

    # Masked rows behave like a fresh start on the new puzzles...
    _, fresh = r.cycle(r.reset(new))
    np.testing.assert_allclose(after.logits[mask], fresh.logits[mask], rtol=1e-5, atol=1e-5)
    # ...the unmasked row like a third cycle on its old puzzle.
    s = r.reset(old)
    for _ in range(3):
        s, cont = r.cycle(s)
    np.testing.assert_allclose(after.logits[1], cont.logits[1], rtol=1e-5, atol=1e-5)
    # An all-False mask changes nothing.
    assert r.reset(new, state=state, mask=np.zeros(3, dtype=bool)) is state


def test_bad_inputs_and_masks_raise_value_errors(model):
    r = TorchReasoner(model, "sudoku")
    with pytest.raises(ValueError, match=r"shape \(B, 81\)"):
        r.reset(np.zeros((2, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        r.reset(np.full((1, 81), 12, dtype=np.uint8))
    with pytest.raises(ValueError, match="integer"):
        r.reset(np.zeros((1, 81), dtype=np.float32))
    state = r.reset(puzzles(2))
    with pytest.raises(ValueError, match="mask"):
        r.reset(puzzles(2), state=state, mask=np.array([True, False, True]))
    with pytest.raises(ValueError, match="rows"):
        r.reset(puzzles(3), state=state, mask=np.array([True, False]))
    with pytest.raises(ValueError, match="unknown task"):
        TorchReasoner(model, "chess")
    with pytest.raises(ValueError, match="seq_len=81"):
        TorchReasoner(model, "maze")


def test_load_pretrained_from_a_checkpoint_and_its_errors(model, tmp_path):
    save_checkpoint(tmp_path / "m", model, meta={"task": "sudoku"})
    r = load_pretrained("sudoku", checkpoint=tmp_path / "m")
    p = puzzles(2)
    _, a = r.cycle(r.reset(p))
    _, b = TorchReasoner(model, "sudoku").cycle(TorchReasoner(model, "sudoku").reset(p))
    np.testing.assert_array_equal(a.logits, b.logits)
    with pytest.raises(ValueError, match="trained for task 'sudoku'"):
        load_pretrained("sudoku-mini", checkpoint=tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="hrm train sudoku"):
        load_pretrained("sudoku", checkpoint=tmp_path / "absent")
    with pytest.raises(ValueError, match="unknown task"):
        load_pretrained("go")


def test_a_device_torch_cannot_use_is_refused_before_anything_moves(model, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # even on a GPU machine
    with pytest.raises(ValueError, match=r"^device 'cuda:1': .*; available here: cpu"):
        TorchReasoner(model, "sudoku", device="cuda:1")
    with pytest.raises(ValueError, match=r"^unknown device 'gpu'"):
        load_pretrained("sudoku", device="gpu")
    assert TorchReasoner(model, "sudoku", device="auto").device == torch.device("cpu")


def test_lazy_package_exports():
    import hrm_agent

    assert hrm_agent.load_pretrained is load_pretrained
    assert hrm_agent.TorchReasoner is TorchReasoner
    assert hrm_agent.HRM is HRM and hrm_agent.HRMConfig is HRMConfig
    with pytest.raises(AttributeError):
        _ = hrm_agent.no_such_name


def test_a_max_aggregating_maze_model_runs_in_the_env_protocol_and_evaluate_alike():
    from hrm_agent.evaluate import evaluate
    from hrm_env.puzzles.tasks import get_task

    task = get_task("maze")
    config = HRMConfig.preset(
        "tiny", vocab_size=6, seq_len=900, mixer="conv", hidden_size=16, expansion=2.0,
        h_cycles=1, max_segments=3, output_choices=task.output_choices,
        max_aggregation=task.wall_tokens,
    )  # fmt: skip
    m = HRM(config, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for block in (*m.L_level.blocks, *m.H_level.blocks):
            block.mixer.max_gate.fill_(0.5)  # so that the walls matter
    batch = task.sample(np.random.default_rng(0), 2, "easy")
    r = TorchReasoner(m, "maze")
    state = r.reset(batch.inputs)
    for _ in range(3):
        state, out = r.cycle(state)
    result = evaluate(m, task, batch)
    np.testing.assert_array_equal(out.logits.argmax(-1), result.predictions)
