"""The trainer: ACT bookkeeping, schedules, bitwise resume, torchrun agreement, the CLI, and a
real learning run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hrm_agent import cli
from hrm_agent.checkpoint import load_checkpoint, load_trainer_state
from hrm_agent.evaluate import evaluate
from hrm_agent.train import TrainConfig, Trainer, train
from hrm_env.puzzles import sudoku
from hrm_env.puzzles.tasks import PuzzleBatch, SudokuTask

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny models on a shared CPU: one thread avoids OpenMP spin contention (10x faster here).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(tmp_path: Path, name: str = "run", **changes) -> TrainConfig:
    fields = dict(
        task="sudoku-mini",
        preset="tiny",
        batch_size=8,
        steps=6,
        lr=3e-3,
        lr_warmup_steps=2,
        eval_size=8,
        log_every=2,
        out_dir=str(tmp_path / name),
        progress=False,
    )
    fields.update(changes)
    return TrainConfig(**fields)


# ---------------------------------------------------------------------- config and schedule
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"task": "chess"}, "unknown task"),
        ({"preset": "huge"}, "unknown preset"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": -1.0}, "lr"),
        ({"lr_schedule": "step"}, "lr_schedule"),
        ({"ema": 1.0}, "ema"),
        ({"halt_exploration_prob": 1.5}, "halt_exploration_prob"),
        ({"train_size": 0}, "train_size"),
        ({"difficulty": "extreme"}, "difficulty"),
        ({"overrides": {"vocab_size": 3}}, "cannot override"),
        ({"overrides": {"gradient": "all"}}, "gradient"),
    ],
)
def test_bad_config_values_raise_value_error(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        tiny(tmp_path, **changes)


def test_config_round_trips_through_a_dict(tmp_path):
    config = tiny(tmp_path, overrides={"h_cycles": 1}, betas=(0.8, 0.9), train_size=10)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    model = config.model_config()
    assert (model.seq_len, model.vocab_size, model.h_cycles) == (16, 10, 1)
    assert model.halt_exploration == config.halt_exploration_prob


def test_learning_rate_warms_up_linearly_then_follows_the_schedule(tmp_path):
    constant = Trainer(tiny(tmp_path, "c", lr=1.0, lr_warmup_steps=4, steps=20))
    assert [constant.lr_at(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cosine = Trainer(
        tiny(
            tmp_path,
            "k",
            lr=1.0,
            lr_warmup_steps=4,
            steps=20,
            lr_schedule="cosine",
            lr_min_ratio=0.1,
        )
    )
    assert cosine.lr_at(3) == 1.0
    assert cosine.lr_at(19) == pytest.approx(0.1)  # the last update reaches the floor
    assert cosine.lr_at(11) == pytest.approx(0.1 + 0.9 * 0.5)  # half way through the decay
    values = [cosine.lr_at(s) for s in range(4, 20)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


# ---------------------------------------------------------------------- ACT bookkeeping
def test_every_puzzle_runs_its_minimum_then_is_replaced_with_a_fresh_carry(tmp_path):
    # Exploration 1 and max_segments 2: every minimum is drawn from [2, 2], so each puzzle
    # runs exactly two segments whatever the Q head says, then all rows are replaced.
    trainer = Trainer(tiny(tmp_path, halt_exploration_prob=1.0, overrides={"max_segments": 2}))
    first = trainer.batch.inputs.copy()
    assert trainer.batch.min_segments.tolist() == [2] * 8
    trainer.train_step()
    assert trainer.batch.segments.tolist() == [1] * 8
    assert np.array_equal(trainer.batch.inputs, first)
    initial = trainer.model.initial_carry(8)
    assert not torch.equal(trainer.carry.z_H, initial.z_H)  # one segment has run
    metrics = trainer.train_step()
    assert metrics["halted"] == 8 and metrics["segments"] == 16
    assert trainer.batch.segments.tolist() == [0] * 8
    assert not np.array_equal(trainer.batch.inputs, first)  # fresh puzzles in every row
    assert torch.equal(trainer.carry.z_H, initial.z_H)  # and fresh carries
    assert torch.equal(trainer.carry.z_L, initial.z_L)
    # The replacement puzzles are valid mini Sudoku with their solutions.
    for q, a in zip(trainer.batch.inputs, trainer.batch.targets, strict=True):
        sudoku.validate(q, a)


def test_without_exploration_a_puzzle_never_outlives_max_segments(tmp_path):
    trainer = Trainer(tiny(tmp_path, halt_exploration_prob=0.0, overrides={"max_segments": 3}))
    assert trainer.batch.min_segments.tolist() == [1] * 8
    halted = 0.0
    for _ in range(9):
        halted += trainer.train_step()["halted"]
        assert trainer.batch.segments.max() < 3
    # Each row halts at least every third step, so 9 steps replace at least 3 puzzles per row.
    assert halted >= 8 * 3


def test_fixed_train_set_draws_only_augmentations_of_its_pool(tmp_path):
    trainer = Trainer(
        tiny(tmp_path, train_size=3, difficulty="medium", overrides={"max_segments": 1})
    )
    pool = trainer.source.pool
    assert len(pool) == 3
    classes = set(sudoku.signature(pool.inputs).tolist())
    drawn = []
    for _ in range(4):
        trainer.train_step()  # max_segments 1: every row is redrawn after each step
        assert trainer.batch.segments.tolist() == [0] * 8
        drawn.append(trainer.batch.inputs.copy())
        for q, a in zip(trainer.batch.inputs, trainer.batch.targets, strict=True):
            sudoku.validate(q, a)  # augmented puzzle and answer stay a valid pair
    drawn = np.concatenate(drawn)
    # Every drawn puzzle is a symmetry of a pool puzzle, and not always the same copy.
    assert set(sudoku.signature(drawn).tolist()) <= classes
    assert len({row.tobytes() for row in drawn}) > 3


# ---------------------------------------------------------------------- resume
@pytest.mark.parametrize(
    "changes",
    [
        {"ema": 0.9, "lr_schedule": "cosine"},
        {"train_size": 12, "halt_exploration_prob": 0.5},
    ],
    ids=["stream-ema-cosine", "fixed-set"],
)
def test_n_steps_resume_n_steps_equals_2n_straight(tmp_path, changes):
    straight = tiny(tmp_path, "straight", steps=12, **changes)
    split = tiny(tmp_path, "split", steps=12, **changes)
    train(straight)
    first = train(split, stop_at=6)
    assert first.step == 6
    second = train(split, resume=True)
    assert second.step == 12

    a = load_trainer_state(Path(straight.out_dir) / "model.trainer.pt")
    b = load_trainer_state(Path(split.out_dir) / "model.trainer.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    if a["ema"] is not None:
        for key in a["ema"]:
            assert torch.equal(a["ema"][key], b["ema"][key]), key
    for key in ("inputs", "targets", "segments", "min_segments"):
        assert torch.equal(a["batch"][key], b["batch"][key]), key
    assert torch.equal(a["carry"]["z_H"], b["carry"]["z_H"])
    assert a["rng"]["numpy"] == b["rng"]["numpy"]
    # The shipped weights (EMA when on) are identical too.
    ma, _, _ = load_checkpoint(Path(straight.out_dir) / "model")
    mb, _, _ = load_checkpoint(Path(split.out_dir) / "model")
    sa, sb = ma.state_dict(), mb.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name
    # The CSV log of the split run has each logged step once, in order.
    steps = [
        int(line.split(",")[0])
        for line in (Path(split.out_dir) / "train.csv").read_text().splitlines()[1:]
    ]
    assert steps == [2, 4, 6, 8, 10, 12]


def test_resume_refuses_a_changed_run_and_a_missing_state(tmp_path):
    config = tiny(tmp_path, steps=2)
    train(config)
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(tiny(tmp_path, steps=4, batch_size=4), resume=True)
    with pytest.raises(ValueError, match="--resume"):
        Trainer(config)  # would overwrite a finished run
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        Trainer(tiny(tmp_path, "empty"), resume=True)
    # Changing only how the run is watched (steps, logging) is allowed.
    assert train(tiny(tmp_path, steps=4, log_every=1), resume=True).step == 4


def test_corrupt_trainer_state_gives_a_clear_error(tmp_path):
    config = tiny(tmp_path, steps=2)
    train(config)
    (Path(config.out_dir) / "model.trainer.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="corrupt"):
        Trainer(config, resume=True)


def test_training_metrics_of_halted_puzzles_match_evaluate_on_frozen_weights(tmp_path):
    # The per-step accuracy the trainer logs is measured on the puzzles that halt, in the
    # middle of training. With the weights held still (lr ~ 0) it must equal what evaluate()
    # gives for the same puzzles after the same number of segments, puzzle by puzzle summed.
    # (With a real lr the logged figure runs above held-out accuracy: each puzzle has had a
    # gradient step on every segment it lived through; scripts/train_metric_bias.py.)
    # Half-trained weights, so that some puzzles come out right and some do not.
    setting = dict(
        difficulty="medium",
        overrides={"mixer": "mlp", "h_cycles": 1, "l_cycles": 1, "loss": "softmax"},
    )
    teacher = Trainer(tiny(tmp_path, "teacher", batch_size=64, steps=150, **setting))
    for _ in range(150):
        teacher.train_step()
    trainer = Trainer(
        tiny(tmp_path, lr=1e-12, lr_warmup_steps=0, halt_exploration_prob=0.5, **setting)
    )
    trainer.model.load_state_dict(teacher.model.state_dict())
    task = trainer.task
    seen = {"accuracy": 0.0, "exact_accuracy": 0.0, "halted": 0.0}
    expected = dict.fromkeys(seen, 0.0)
    for _ in range(20):
        inputs = trainer.batch.inputs.copy()
        targets = trainer.batch.targets.copy()
        ran = trainer.batch.segments + 1
        metrics = trainer.train_step()
        halted = trainer.batch.segments == 0  # halted rows were refilled with fresh puzzles
        for key in seen:
            seen[key] += metrics[key]
        for k in np.unique(ran[halted]):
            rows = halted & (ran == k)
            batch = PuzzleBatch(inputs[rows], targets[rows], np.zeros(int(rows.sum())))
            result = evaluate(trainer.model, task, batch, max_segments=int(k))
            mask = task.cell_mask(batch.inputs)
            right = (result.predictions == batch.targets) & mask
            expected["accuracy"] += float((right.sum(1) / mask.sum(1)).sum())
            expected["exact_accuracy"] += float(result.correct.sum())
            expected["halted"] += int(rows.sum())
    assert seen["halted"] >= 16 and 0 < seen["exact_accuracy"] < seen["halted"]
    for key in seen:
        assert seen[key] == pytest.approx(expected[key], abs=1e-4), key


# ---------------------------------------------------------------------- torchrun
TEARDOWN_ABORT = "terminate called without an active exception"


def test_two_process_torchrun_agrees_with_one_process(tmp_path):
    args = [
        "sudoku-mini",
        "--preset",
        "tiny",
        "--batch-size",
        "8",
        "--steps",
        "8",
        "--lr",
        "3e-3",
        "--warmup",
        "2",
        "--eval-size",
        "8",
        "--log-every",
        "2",
        "--no-progress",
        "--halt-exploration",
        "0.5",
        "--max-segments",
        "3",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

    def launch(out: Path) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
        command += ["--standalone", "-m", "hrm_agent.train", *args]
        command += ["--out-dir", str(out), "--threads", "1"]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    ddp = tmp_path / "ddp"
    distributed = launch(ddp)
    if distributed.returncode != 0 and TEARDOWN_ABORT in distributed.stderr:
        # Seen once in CI (torch 2.13, gloo): a rank aborted while tearing the process group
        # down, after training. The trainer now waits at a barrier before leaving; should the
        # abort still come from inside torch, a second clean launch must agree all the same.
        ddp = tmp_path / "ddp-again"  # the first run may have finished its checkpoint
        distributed = launch(ddp)
    assert distributed.returncode == 0, distributed.stderr[-3000:]
    single = subprocess.run(
        [
            sys.executable,
            "-m",
            "hrm_agent.train",
            *args,
            "--out-dir",
            str(tmp_path / "one"),
            "--threads",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]

    a = load_trainer_state(tmp_path / "one" / "model.trainer.pt")
    b = load_trainer_state(ddp / "model.trainer.pt")
    assert b["step"] == a["step"] == 8
    for key in a["model"]:
        torch.testing.assert_close(b["model"][key], a["model"][key], rtol=1e-4, atol=1e-5)
    # Same halting decisions, same fresh puzzles, rank slices stitched back in order.
    for key in ("inputs", "segments", "min_segments"):
        assert torch.equal(a["batch"][key], b["batch"][key]), key
    torch.testing.assert_close(b["carry"]["z_H"], a["carry"]["z_H"], rtol=1e-4, atol=1e-4)
    # Only rank 0 wrote logs: one header and the four logged rows.
    assert len((ddp / "train.csv").read_text().splitlines()) == 5


# ---------------------------------------------------------------------- the commands
def write_mini_csv(path: Path, n: int, seed: int) -> None:
    s = sudoku.generate(np.random.default_rng(seed), "medium", n, size=4)
    sudoku.write_csv(path, s)


def test_train_and_eval_commands_end_to_end(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli.main(
        [
            "train",
            "sudoku-mini",
            "--preset",
            "tiny",
            "--steps",
            "4",
            "--batch-size",
            "4",
            "--eval-size",
            "8",
            "--log-every",
            "2",
            "--out-dir",
            str(out),
            "--no-progress",
            "--h-cycles",
            "1",
            "--max-segments",
            "3",
            "--json",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 4 and summary["task"] == "sudoku-mini"
    assert summary["eval"]["n"] == 8
    for name in ("model.safetensors", "model.json", "model.trainer.pt", "train.csv", "eval.csv"):
        assert (out / name).is_file(), name
    assert any((out / "tb").iterdir())  # TensorBoard event file
    meta = json.loads((out / "model.json").read_text())
    assert meta["task"] == "sudoku-mini" and meta["config"]["h_cycles"] == 1
    for key in ("preset", "train_config", "steps", "minutes", "device", "eval"):
        assert key in meta["meta"], key
    header = (out / "train.csv").read_text().splitlines()[0].split(",")
    assert {
        "step",
        "loss",
        "lm_loss",
        "q_halt_loss",
        "q_continue_loss",
        "accuracy",
        "exact_accuracy",
        "mean_segments",
        "lr",
        "samples_per_s",
    } <= set(header)

    data = tmp_path / "mini.csv"
    write_mini_csv(data, 10, seed=3)
    rc = cli.main(
        [
            "eval",
            "sudoku-mini",
            "--data",
            str(data),
            "--checkpoint",
            str(out / "model"),
            "--json",
            "--limit",
            "6",
            "--batch-size",
            "4",
        ]
    )
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    for key in (
        "task",
        "n",
        "exact_accuracy",
        "cell_accuracy",
        "mean_cycles",
        "seconds",
        "accuracy_per_cycle",
        "q_halting",
    ):
        assert key in result, key
    assert result["n"] == 6 and len(result["accuracy_per_cycle"]) == 3  # N=1, 3 segments
    assert result["mean_cycles"] == 3.0
    assert 0.0 <= result["q_halting"]["mean_cycles"] <= 3.0

    rc = cli.main(
        ["eval", "sudoku-mini", "--checkpoint", str(out / "model"), "--limit", "4", "--halt", "q"]
    )
    assert rc == 0
    table = capsys.readouterr().out
    assert "Q head" in table and "test set" in table


def test_eval_command_errors_are_clear(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny(tmp_path, "run", steps=1))
    capsys.readouterr()

    assert cli.main(["eval", "chess", "--checkpoint", str(out / "model")]) == 2
    assert "unknown task" in capsys.readouterr().err

    assert cli.main(["eval", "sudoku", "--checkpoint", str(out / "model"), "--limit", "1"]) == 2
    assert "trained for task 'sudoku-mini'" in capsys.readouterr().err

    assert cli.main(["eval", "sudoku-mini", "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err

    (out / "model.safetensors").write_bytes(b"\x00" * 40)
    assert cli.main(["eval", "sudoku-mini", "--checkpoint", str(out / "model")]) == 2
    assert "corrupt" in capsys.readouterr().err

    bad = tmp_path / "bad.txt"
    bad.write_text("12345\n")
    assert (
        cli.main(["eval", "sudoku-mini", "--data", str(bad), "--checkpoint", str(out / "model")])
        == 2
    )
    assert capsys.readouterr().err.startswith("hrm eval: error:")


def test_train_command_errors_are_clear(tmp_path, capsys):
    assert cli.main(["train", "chess", "--out-dir", str(tmp_path / "x")]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "train",
                "sudoku-mini",
                "--preset",
                "tiny",
                "--resume",
                "--out-dir",
                str(tmp_path / "y"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "nothing to resume" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "train",
                "sudoku-mini",
                "--preset",
                "tiny",
                "--gradient",
                "one-step",
                "--h-cycles",
                "0",
                "--out-dir",
                str(tmp_path / "z"),
            ]
        )
        == 2
    )
    assert "h_cycles" in capsys.readouterr().err


# ---------------------------------------------------------------------- real learning
class MiniSudokuHalf(SudokuTask):
    """4x4 Sudoku restricted to half of the equivalence classes.

    ``sudoku.signature`` is invariant under every augmentation, so the two halves (signature
    parity 0 and 1) share no puzzle, not even up to symmetry: a model trained on one half and
    scored on the other has learned the rules, not memorised the (few) 4x4 puzzle classes.
    """

    def __init__(self, half: int) -> None:
        super().__init__(4)
        self.half = half

    def sample(self, rng, n, difficulty=None) -> PuzzleBatch:
        parts, have = [], 0
        while have < n:
            batch = super().sample(rng, 2 * (n - have) + 8, difficulty)
            side = sudoku.signature(batch.inputs) % np.uint64(2)
            keep = np.flatnonzero(side == self.half)[: n - have]
            parts.append(batch[keep])
            have += keep.size
        return PuzzleBatch.concat(parts)


@pytest.mark.slow
def test_tiny_model_learns_mini_sudoku_from_scratch(tmp_path):
    """A tiny HRM learns 4x4 Sudoku (6-7 givens) to >= 90% exact on inequivalent puzzles.

    Setting found by tuning on a loaded 2-core CPU: the token-mixing MLP (fixed grid geometry
    is what it is good at) and one L and one H update per segment (N = T = 1: each cycle is
    cheap and the per-segment supervision does the rest); the attention mixer at this size is
    still far below 90% after 3 minutes. Here: 40-60 s, 98-100% at step 600 and 100% at 800
    for seeds 0, 1, 2.
    """
    config = tiny(
        tmp_path,
        difficulty="medium",
        batch_size=64,
        steps=800,
        lr=3e-3,
        lr_warmup_steps=50,
        lr_schedule="cosine",
        log_every=100,
        eval_size=64,
        overrides={"mixer": "mlp", "h_cycles": 1, "l_cycles": 1, "loss": "softmax"},
    )
    trainer = Trainer(config, task=MiniSudokuHalf(0))
    trainer.fit()
    held_out = MiniSudokuHalf(1).sample(np.random.default_rng(20250701), 400, "medium")
    result = evaluate(trainer.model, MiniSudokuHalf(1), held_out)
    assert result.exact_accuracy >= 0.9, result.to_json()
    # Recurrence helps: the answer after the last cycle beats the one after the first.
    assert result.exact_per_cycle[-1] >= result.exact_per_cycle[0]
    assert result.q_exact_accuracy >= 0.9  # and the Q head halts on good answers
