"""The trainer computes what it computed when ``tests/data/training/`` was written.

The fixture (made by ``tests/data/make_training_fixture.py``) holds seeded tiny runs: their
final weights, ``train.csv``, ``eval.csv`` and ``model.json``, and a trainer state written at a
mid-run step. Rerunning a config must give the same bits, and resuming the stored state must
finish as the straight run did. Timing columns differ between any two runs and are left out:
``samples_per_s`` in ``train.csv``, ``minutes`` and ``cpu_minutes`` in ``eval.csv`` (and the
times, paths and thread counts in ``model.json``).

CPU float results depend on the torch build and on the SIMD kernels it picks. Where the
platform differs from the fixture's (``platform.json``) a mismatch skips instead of failing.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from hrm_agent.training.options import TrainConfig
from hrm_agent.training.trainer import train

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "training"
RUNS = ("sudoku", "maze")
TIMING_COLUMNS = {"train.csv": {"samples_per_s"}, "eval.csv": {"minutes", "cpu_minutes"}}
# model.json keys that hold wall or CPU time, a folder, or the thread count.
VOLATILE_KEYS = {
    "seconds",
    "minutes",
    "cpu_minutes",
    "total_minutes",
    "total_cpu_minutes",
    "run",
    "out_dir",
    "threads",
}


@pytest.fixture
def one_thread():
    """The fixture was made with one torch thread; reductions may round otherwise."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def fixture_config(name: str, out_dir: Path, **changes: Any) -> TrainConfig:
    fields = json.loads((FIXTURE / name / "config.json").read_text())["config"]
    return TrainConfig(**{**fields, **changes, "out_dir": str(out_dir)})


def platform_differs() -> bool:
    made = json.loads((FIXTURE / "platform.json").read_text())
    here = {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
    return any(made[k] != v for k, v in here.items())


def csv_rows(path: Path, dropped: set[str]) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in dropped} for row in csv.DictReader(f)]


def without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_volatile(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


def _field_defaults() -> dict[str, Any]:
    import dataclasses

    from hrm_agent.config import HRMConfig

    fields = [*dataclasses.fields(HRMConfig), *dataclasses.fields(TrainConfig)]
    return {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}


def without_new_defaults(value: Any, ref: Any, defaults: dict[str, Any]) -> Any:
    """``value`` less the config keys the reference lacks that hold their default: fields
    added after the fixture was made, which change nothing while they are at their default."""
    if isinstance(value, dict) and isinstance(ref, dict):
        return {
            k: without_new_defaults(v, ref.get(k), defaults)
            for k, v in value.items()
            if k in ref or k not in defaults or v != defaults[k]
        }
    if isinstance(value, list) and isinstance(ref, list) and len(value) == len(ref):
        return [without_new_defaults(v, r, defaults) for v, r in zip(value, ref, strict=True)]
    return value


def differences(out: Path, ref: Path) -> list[str]:
    """What differs between the run in ``out`` and the stored run ``ref`` (empty: nothing)."""
    found = []
    mine, theirs = load_file(out / "model.safetensors"), load_file(ref / "model.safetensors")
    if mine.keys() != theirs.keys():
        found.append(f"weight names {sorted(mine.keys() ^ theirs.keys())}")
    found += [f"weights {k}" for k in theirs if k in mine and not torch.equal(mine[k], theirs[k])]
    for name, dropped in TIMING_COLUMNS.items():
        if csv_rows(out / name, dropped) != csv_rows(ref / name, dropped):
            found.append(name)
    mine_doc, ref_doc = (
        without_volatile(json.loads((d / "model.json").read_text())) for d in (out, ref)
    )
    if without_new_defaults(mine_doc, ref_doc, _field_defaults()) != ref_doc:
        found.append("model.json")
    return found


def assert_same(out: Path, ref: Path) -> None:
    found = differences(out, ref)
    if found and platform_differs():
        pytest.skip(f"the fixture was made on another torch build or CPU; differs in {found}")
    assert not found, f"differs from {ref}: {found}"


@pytest.mark.parametrize("name", RUNS)
def test_a_seeded_run_gives_the_fixture_bit_for_bit(name, tmp_path, one_thread):
    train(fixture_config(name, tmp_path / "run"))
    assert_same(tmp_path / "run", FIXTURE / name)


@pytest.mark.parametrize("name", RUNS)
def test_resuming_the_fixture_state_finishes_as_the_straight_run(name, tmp_path, one_thread):
    out = tmp_path / "resumed"
    shutil.copytree(FIXTURE / name / "mid", out)
    mid = json.loads((FIXTURE / name / "config.json").read_text())["mid"]
    result = train(fixture_config(name, out), resume=True)
    assert result.step > mid
    assert_same(out, FIXTURE / name)


def test_the_comparison_sees_a_change_of_seed(tmp_path, one_thread):
    """The check above is not vacuous: one changed field shows in weights and logs."""
    train(fixture_config("sudoku", tmp_path / "other", seed=4))
    found = differences(tmp_path / "other", FIXTURE / "sudoku")
    assert any(f.startswith("weights") for f in found) and "train.csv" in found, found
