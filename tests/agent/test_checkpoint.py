"""Checkpoints: exact round trip, bf16 storage, atomic writes, clear errors for bad files."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

import hrm_agent.checkpoint as ckpt
from hrm_agent import cli
from hrm_agent.checkpoint import (
    load_checkpoint,
    load_trainer_state,
    save_checkpoint,
    save_trainer_state,
)
from hrm_agent.config import HRMConfig
from hrm_agent.model import HRM


class Evil:
    """An arbitrary class: unpickling it is exactly what weights_only must refuse."""


@pytest.fixture
def model() -> HRM:
    return HRM(HRMConfig.preset("tiny"), generator=torch.Generator().manual_seed(0))


def run(model: HRM, segments: int = 2):
    t = torch.randint(0, 10, (2, 81), generator=torch.Generator().manual_seed(5))
    carry = model.initial_carry(2)
    with torch.no_grad():
        for _ in range(segments):
            carry, out = model(carry, t)
    return out


def test_round_trip_gives_identical_outputs(model, tmp_path):
    with torch.no_grad():
        model.q_head.weight.normal_()  # make Q non-trivial
    meta = {"task": "sudoku", "steps": 12, "test": {"exact_accuracy": 0.5}}
    w, j = save_checkpoint(tmp_path / "run" / "best", model, meta=meta)
    assert w.name == "best.safetensors" and j.name == "best.json"
    loaded, config, got_meta = load_checkpoint(tmp_path / "run" / "best")
    assert config == model.config
    assert got_meta == meta
    assert not loaded.training
    a, b = run(model), run(loaded)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.q_halt, b.q_halt)
    doc = json.loads(j.read_text())
    assert doc["task"] == "sudoku" and doc["config"]["hidden_size"] == 32
    # A suffix on the stem is accepted too.
    again, _, _ = load_checkpoint(str(j))
    assert torch.equal(run(again).logits, a.logits)


def test_bf16_storage_halves_the_file_and_stays_close(model, tmp_path):
    w32, _ = save_checkpoint(tmp_path / "f32", model, meta={})
    w16, _ = save_checkpoint(tmp_path / "bf16", model, meta={}, dtype="bfloat16")
    assert w16.stat().st_size < 0.6 * w32.stat().st_size
    loaded, _, _ = load_checkpoint(tmp_path / "bf16")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    a, b = run(model, 1), run(loaded, 1)
    assert (a.logits - b.logits).abs().max() < 0.3  # bf16 rounding only
    with pytest.raises(ValueError, match="dtype"):
        save_checkpoint(tmp_path / "x", model, dtype="int8")


def test_writes_are_atomic_and_leave_no_temp_files(model, tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "m", model, meta={"version": 1})
    before = (tmp_path / "m.safetensors").read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", explode)
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "m", model, meta={"version": 2})
    assert (tmp_path / "m.safetensors").read_bytes() == before
    assert json.loads((tmp_path / "m.json").read_text())["meta"] == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_unserialisable_meta_is_refused_before_writing(model, tmp_path):
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "m", model, meta={"bad": object()})
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="config differs"):
        save_checkpoint(tmp_path / "m", model, config=model.config.replace(h_cycles=1))


def test_missing_files_raise_file_not_found(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        load_checkpoint(tmp_path / "nothing")
    save_checkpoint(tmp_path / "m", model, meta={})
    (tmp_path / "m.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="m.safetensors"):
        load_checkpoint(tmp_path / "m")


def test_corrupt_files_raise_value_errors(model, tmp_path):
    save_checkpoint(tmp_path / "m", model, meta={})
    weights = tmp_path / "m.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(tmp_path / "m")
    weights.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(tmp_path / "m")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_checkpoint(tmp_path / "m")
    (tmp_path / "m.json").write_text(json.dumps({"weights": 1}))
    with pytest.raises(ValueError, match="not an hrm checkpoint"):
        load_checkpoint(tmp_path / "m")


def _edit_config(tmp_path, **changes):
    path = tmp_path / "m.json"
    doc = json.loads(path.read_text())
    doc["config"].update(changes)
    path.write_text(json.dumps(doc))


def test_config_that_does_not_match_the_weights_names_the_tensor(model, tmp_path):
    save_checkpoint(tmp_path / "m", model, meta={})
    _edit_config(tmp_path, hidden_size=64)
    with pytest.raises(ValueError, match=r"token_embedding.*\(10, 32\).*\(10, 64\)"):
        load_checkpoint(tmp_path / "m")
    save_checkpoint(tmp_path / "m", model, meta={})
    _edit_config(tmp_path, h_layers=3)
    with pytest.raises(ValueError, match="H_level.blocks.2.*missing"):
        load_checkpoint(tmp_path / "m")
    save_checkpoint(tmp_path / "m", model, meta={})
    _edit_config(tmp_path, l_layers=1)
    with pytest.raises(ValueError, match="unexpected tensor 'L_level.blocks.1"):
        load_checkpoint(tmp_path / "m")


def test_unknown_or_invalid_config_keys_are_clear_errors(model, tmp_path):
    save_checkpoint(tmp_path / "m", model, meta={})
    _edit_config(tmp_path, dropout=0.1)
    with pytest.raises(ValueError, match="unknown HRMConfig key.*dropout"):
        load_checkpoint(tmp_path / "m")
    save_checkpoint(tmp_path / "m", model, meta={})
    _edit_config(tmp_path, num_heads=5)
    with pytest.raises(ValueError, match="num_heads=5 must divide"):
        load_checkpoint(tmp_path / "m")


def test_trainer_state_round_trip_and_refuses_pickled_objects(model, tmp_path):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    state = {"step": 7, "optimizer": opt.state_dict(), "rng": torch.get_rng_state()}
    path = save_trainer_state(tmp_path / "m.trainer.pt", state)
    got = load_trainer_state(path)
    assert got["step"] == 7 and torch.equal(got["rng"], state["rng"])
    assert got["optimizer"]["param_groups"][0]["lr"] == 1e-3

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="unsafe|corrupt"):
        load_trainer_state(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError):
        load_trainer_state(tmp_path / "absent.pt")


# ---------------------------------------------------------------------- grid mixers
@pytest.mark.parametrize(
    "overrides",
    [
        {"mixer": "candidates", "hidden_size": 36},  # 9x9 Sudoku, 9 digit slots of 4
        {"mixer": "candidates", "seq_len": 16},  # 4x4 mini Sudoku
        {"mixer": "conv", "conv_kernel": 5, "conv_dilations": "1,2"},
        {"mixer": "conv", "seq_len": 900, "vocab_size": 6, "h_layers": 1, "l_layers": 1},
    ],
    ids=["candidates-9x9", "candidates-4x4", "conv-sudoku", "conv-maze"],
)
def test_grid_mixers_round_trip(tmp_path, overrides):
    config = HRMConfig.preset("tiny", **overrides)
    model = HRM(config, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.q_head.weight.normal_()
    save_checkpoint(tmp_path / "m", model, meta={"task": "any"})
    loaded, got_config, _ = load_checkpoint(tmp_path / "m")
    assert got_config == config
    assert loaded.state_dict().keys() == model.state_dict().keys()
    t = torch.randint(0, config.vocab_size, (2, config.seq_len))
    with torch.no_grad():
        a = model(model.initial_carry(2), t)[1]
        b = loaded(loaded.initial_carry(2), t)[1]
    assert torch.equal(a.logits, b.logits) and torch.equal(a.q_halt, b.q_halt)
    # The conv dilations come back with the config, block by block.
    if config.mixer == "conv":
        got = [blk.mixer.dilation for blk in loaded.L_level.blocks]
        assert got == [blk.mixer.dilation for blk in model.L_level.blocks]


# ---------------------------------------------------------------------- non-finite weights
def poison(stem, name: str, value: float) -> None:
    """Write ``value`` into one element of tensor ``name`` of the checkpoint's weights."""
    path = stem.with_suffix(".safetensors")
    tensors = load_file(str(path))
    tensors[name].view(-1)[3] = value
    save_file(tensors, str(path), metadata={"format": "pt"})


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [None, "bfloat16"])
@pytest.mark.parametrize("name", ["L_level.blocks.1.mlp.down.weight", "z_H0"])
def test_non_finite_weights_are_refused_naming_the_tensor(model, tmp_path, value, dtype, name):
    save_checkpoint(tmp_path / "m", model, meta={}, dtype=dtype)
    load_checkpoint(tmp_path / "m")  # fine before
    poison(tmp_path / "m", name, value)
    with pytest.raises(ValueError, match=re.escape(repr(name)) + ".*non-finite"):
        load_checkpoint(tmp_path / "m")


def test_non_finite_weights_make_hrm_eval_fail_with_one_line(tmp_path, capsys):
    config = HRMConfig.preset("tiny", seq_len=16)
    model = HRM(config, generator=torch.Generator().manual_seed(0))
    stem = tmp_path / "m"
    save_checkpoint(stem, model, meta={"task": "sudoku-mini"})
    args = ["eval", "sudoku-mini", "--checkpoint", str(stem), "--limit", "2", "--json"]
    assert cli.main(args) == 0  # the healthy checkpoint evaluates
    capsys.readouterr()
    for value in (float("nan"), float("inf")):
        poison(stem, "token_embedding", value)
        assert cli.main(args) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.splitlines()
        assert len(lines) == 1, captured.err
        assert lines[0].startswith("hrm eval: error:")
        assert "'token_embedding'" in lines[0] and "non-finite" in lines[0]
