"""The trainer: ACT bookkeeping, schedules, bitwise resume, torchrun agreement, the CLI, and a
real learning run."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from hrm_agent import cli
from hrm_agent import losses as losses_module
from hrm_agent.checkpoint import load_checkpoint, load_trainer_state
from hrm_agent.evaluate import evaluate
from hrm_agent.training import trainer as trainer_module
from hrm_agent.training.data import parse_difficulty_mix
from hrm_agent.training.options import TrainConfig
from hrm_agent.training.stops import TrainingDiverged, TrainingInterrupted
from hrm_agent.training.trainer import Trainer, train
from hrm_env.puzzles import sudoku
from hrm_env.puzzles.tasks import PuzzleBatch, SudokuTask, get_task

ROOT = Path(__file__).resolve().parents[2]


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
        ({"difficulty": "easy:0.5,extreme:0.5"}, "extreme"),
        ({"difficulty": "easy:0"}, "must be > 0"),
        ({"eval_difficulty": "easy,extreme"}, "extreme"),
        ({"eval_difficulty": " , "}, "no tier"),
        ({"overrides": {"mixer": "candidates", "hidden_size": 30}}, "multiple of 4"),
        ({"overrides": {"mixer": "conv", "conv_kernel": 4}}, "odd"),
        ({"overrides": {"mixer": "conv", "conv_dilations": "1,x"}}, "conv_dilations"),
        ({"overrides": {"vocab_size": 3}}, "cannot override"),
        ({"overrides": {"gradient": "all"}}, "gradient"),
        ({"targets": "nearest"}, "targets must be one of"),
        ({"train_halting": "never"}, "train_halting must be one of"),
        ({"carry_noise": -0.1}, "carry_noise"),
        ({"carry_noise": float("nan")}, "carry_noise"),
        ({"q_step_cost": -0.01}, "q_step_cost"),
        ({"q_step_cost": 1.0}, "q_step_cost"),
        ({"q_step_cost": float("nan")}, "q_step_cost"),
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


def _halt_at_once(trainer: Trainer) -> Trainer:
    """Bias the (zero-weight) Q head so that q_halt > q_continue for every puzzle."""
    with torch.no_grad():
        trainer.model.q_head.bias.copy_(torch.tensor([5.0, -5.0]))
    return trainer


def test_train_halting_max_runs_every_puzzle_to_the_limit_whatever_the_q_head_says(tmp_path):
    changes = dict(halt_exploration_prob=0.0, overrides={"max_segments": 4})
    acting = _halt_at_once(Trainer(tiny(tmp_path, "act", **changes)))
    assert acting.train_step()["halted"] == 8  # under ACT this head halts everything at once
    trainer = _halt_at_once(Trainer(tiny(tmp_path, train_halting="max", **changes)))
    # Staggered starts: the 8 rows begin at segment counts 0,0,1,1,2,2,3,3 of 4.
    assert trainer.batch.segments.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    for _ in range(12):
        before = trainer.batch.segments.copy()
        metrics = trainer.train_step()
        left = trainer.batch.segments == 0
        assert (before[left] == 3).all()  # only puzzles at their last segment leave
        assert metrics["halted"] == int(left.sum()) == 2  # two rows leave every step
        assert metrics["q_halt_loss"] > 0  # the Q head is still trained


@pytest.mark.parametrize("sigma", [0.0, 0.5])
def test_carry_noise_moves_only_the_carries_past_a_puzzles_first_segment(tmp_path, sigma):
    trainer = Trainer(tiny(tmp_path, carry_noise=sigma, overrides={"max_segments": 4}))
    trainer.train_step()  # every carry has run one segment now
    trainer.batch.segments[:] = [0, 1, 0, 2, 0, 3, 1, 1]  # rows 0, 2, 4 start afresh
    seen = []
    forward = trainer.model.forward

    def spy(carry, tokens):
        seen.append(carry)
        return forward(carry, tokens)

    trainer.model.forward = spy
    before = trainer.carry
    trainer.train_step()
    given = seen[0]
    fresh = torch.tensor([0, 2, 4])
    later = torch.tensor([1, 3, 5, 6, 7])
    for got, kept in ((given.z_H, before.z_H), (given.z_L, before.z_L)):
        assert torch.equal(got[fresh], kept[fresh])
        moved = got[later] - kept[later]
        if sigma == 0:
            assert torch.equal(moved, torch.zeros_like(moved))
        else:
            assert abs(float(moved.std()) - sigma) < 0.05
            assert abs(float(moved.mean())) < 0.05


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
        {"carry_noise": 0.3},
    ],
    ids=["stream-ema-cosine", "fixed-set", "carry-noise"],
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
    assert "--h-cycles must be a positive int" in capsys.readouterr().err


# ---------------------------------------------------------------------- difficulty mixes
def test_parse_difficulty_mix_normalises_the_weights():
    mini = get_task("sudoku-mini")
    assert parse_difficulty_mix(mini, "medium") == [("medium", 1.0)]
    assert parse_difficulty_mix(mini, "easy:1,hard:3") == [("easy", 0.25), ("hard", 0.75)]
    assert parse_difficulty_mix(mini, "easy,hard") == [("easy", 0.5), ("hard", 0.5)]
    mix = parse_difficulty_mix(mini, " easy : 0.2 , medium:0.2,hard:0.1")
    assert [name for name, _ in mix] == ["easy", "medium", "hard"]
    assert [w for _, w in mix] == pytest.approx([0.4, 0.4, 0.2])
    assert math.fsum(w for _, w in mix) == pytest.approx(1.0)
    assert parse_difficulty_mix(get_task("sudoku"), "extreme:2,easy:2") == [
        ("extreme", 0.5),
        ("easy", 0.5),
    ]


@pytest.mark.parametrize(
    "text, words",
    [
        ("easy:1,extreme:1", "unknown difficulty 'extreme'"),  # not a 4x4 tier
        ("easy:1,", "unknown difficulty ''"),
        ("easy:x", "'x' of 'easy' is not a number"),
        ("easy:0.5,hard:0", "weight of 'hard' must be > 0"),
        ("easy:-1,hard:2", "weight of 'easy' must be > 0"),
        ("easy:nan", "must be > 0"),
        ("easy:inf,hard:1", "must be > 0"),
        ("easy:1,easy:2", "'easy' appears twice"),
        ("easy:1,hard, easy ", "'easy' appears twice"),
    ],
)
def test_bad_difficulty_mixes_are_refused_naming_the_problem(tmp_path, text, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_difficulty_mix(get_task("sudoku-mini"), text)
    with pytest.raises(ValueError, match=re.escape(words)):
        tiny(tmp_path, difficulty=text)


def test_a_difficulty_mix_draws_puzzles_of_each_tier(tmp_path):
    # 4x4 tiers count givens: easy >= 8, hard <= 5 (never medium's 6..7).
    trainer = Trainer(tiny(tmp_path, "stream", difficulty="easy:0.5,hard:0.5", batch_size=32))
    tiers = [sudoku.mini_tier_of(q) for q in trainer.batch.inputs]
    assert set(tiers) == {"easy", "hard"}
    for q, a in zip(trainer.batch.inputs, trainer.batch.targets, strict=True):
        sudoku.validate(q, a)
    # A fixed pool draws each tier in about its share of the mix.
    pool = Trainer(tiny(tmp_path, "pool", difficulty="easy:3,medium:1", train_size=200)).source.pool
    counts = {t: 0 for t in ("easy", "medium", "hard")}
    for q in pool.inputs:
        counts[sudoku.mini_tier_of(q)] += 1
    assert counts["hard"] == 0 and 120 <= counts["easy"] <= 180, counts
    # 9x9 tiers go by the solver's rating: easy 0 guesses, medium 1..3.
    nine = Trainer(
        tiny(tmp_path, "nine", task="sudoku", difficulty="easy:1,medium:1", train_size=24)
    ).source.pool
    assert {sudoku.tier_of(int(r)) for r in nine.ratings} == {"easy", "medium"}


# ---------------------------------------------------------------------- per-tier evaluation
def read_csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_eval_difficulty_logs_a_row_per_tier_and_keeps_its_sets_on_resume(tmp_path):
    setting = dict(steps=4, eval_every=2, eval_size=6, eval_difficulty="easy,hard")
    split = tiny(tmp_path, "split", **setting)
    first = Trainer(split)
    sets = first.eval_sets()
    assert list(sets) == ["easy", "hard"]
    for tier, batch in sets.items():
        assert len(batch) == 6
        assert {sudoku.mini_tier_of(q) for q in batch.inputs} == {tier}
    try:
        first.fit(stop_at=2)
    finally:
        first.close()
    again = Trainer(split, resume=True)
    for tier, batch in again.eval_sets().items():
        assert np.array_equal(batch.inputs, sets[tier].inputs), tier
        assert np.array_equal(batch.targets, sets[tier].targets), tier
    try:
        again.fit()
    finally:
        again.close()

    rows = read_csv_rows(Path(split.out_dir) / "eval.csv")
    assert [(r["step"], r["tier"]) for r in rows] == [
        ("2", "easy"),
        ("2", "hard"),
        ("4", "easy"),
        ("4", "hard"),
    ]
    assert all(r["n"] == "6" for r in rows)
    minutes = [float(r["minutes"]) for r in rows]
    cpu = [float(r["cpu_minutes"]) for r in rows]
    assert min(minutes) > 0 and min(cpu) > 0
    assert minutes[2] >= minutes[0] and cpu[2] >= cpu[0]  # the clocks carried over the resume
    meta = json.loads((Path(split.out_dir) / "model.json").read_text())["meta"]
    assert set(meta["eval_tiers"]) == {"easy", "hard"}
    assert meta["eval_tiers"]["hard"]["n"] == 6

    # An uninterrupted run evaluates the same puzzles with the same weights: same figures.
    train(tiny(tmp_path, "straight", **setting))
    straight = read_csv_rows(tmp_path / "straight" / "eval.csv")
    figures = ("step", "tier", "exact_accuracy", "cell_accuracy", "q_exact_accuracy", "n")
    assert [[r[k] for k in figures] for r in straight] == [[r[k] for k in figures] for r in rows]


def test_without_eval_difficulty_the_test_set_is_the_one_tier(tmp_path):
    config = tiny(tmp_path, steps=2)
    train(config)
    rows = read_csv_rows(Path(config.out_dir) / "eval.csv")
    assert [(r["step"], r["tier"], r["n"]) for r in rows] == [("2", "test", "8")]


# ---------------------------------------------------------------------- init-from
def meta_of(out_dir: str | Path) -> dict:
    return json.loads((Path(out_dir) / "model.json").read_text())["meta"]


def test_init_from_starts_from_the_checkpoint_weights_with_its_config(tmp_path):
    parent = train(tiny(tmp_path, "parent", steps=4, overrides={"h_cycles": 1}))
    stem = str(parent.checkpoint)
    weights = load_checkpoint(stem)[0].state_dict()
    child_config = tiny(tmp_path, "child", seed=5, init_from=stem, overrides={"max_segments": 3})
    model = child_config.model_config()
    # The checkpoint's config (h_cycles 1, not the preset's 2) with the overrides on top.
    assert (model.h_cycles, model.max_segments) == (1, 3)
    child = Trainer(child_config)
    for name, tensor in child.model.state_dict().items():
        assert torch.equal(tensor, weights[name]), name
    # The first step's loss is the parent's weights' loss on this run's first batch, which a
    # fresh model does not get.
    twin = Trainer(tiny(tmp_path, "twin", seed=5, overrides={"h_cycles": 1, "max_segments": 3}))
    fresh_loss = twin.train_step()["loss"]
    twin = Trainer(tiny(tmp_path, "twin2", seed=5, overrides={"h_cycles": 1, "max_segments": 3}))
    assert twin.model.config == child.model.config
    twin.model.load_state_dict(weights)
    twin.carry = twin.model.initial_carry(8)  # from the loaded z_H0, z_L0
    loss = child.train_step()["loss"]
    assert loss == pytest.approx(twin.train_step()["loss"], rel=1e-6, abs=1e-7)
    assert loss != pytest.approx(fresh_loss, rel=1e-3)
    # The optimizer is fresh: AdamW has taken exactly one step.
    state = child.optimizer.state_dict()["state"]
    assert all(int(s["step"]) == 1 for s in state.values())


def test_init_from_records_the_lineage_and_its_totals(tmp_path):
    a = train(tiny(tmp_path, "a", steps=4))
    b_config = tiny(tmp_path, "b", steps=3, init_from=str(a.checkpoint))
    train(b_config, stop_at=1)
    b = train(b_config, resume=True)  # a resumed run keeps its lineage
    c = train(tiny(tmp_path, "c", steps=2, init_from=str(b.checkpoint)))

    meta_a, meta_b, meta_c = (
        meta_of(tmp_path / "a"),
        meta_of(tmp_path / "b"),
        meta_of(c.checkpoint.parent),
    )
    assert len(meta_a["lineage"]) == 1 and meta_a["total_steps"] == 4
    lineage = meta_c["lineage"]
    assert [run["run"] for run in lineage] == [str(tmp_path / n) for n in ("a", "b", "c")]
    assert [run["steps"] for run in lineage] == [4, 3, 2]
    assert lineage[0] == meta_a["lineage"][0]  # carried over unchanged
    assert lineage[:2] == meta_b["lineage"]
    assert lineage[1]["init_from"] == str(a.checkpoint)
    assert lineage[2]["init_from"] == str(b.checkpoint)
    assert meta_b["total_steps"] == 7 and meta_c["total_steps"] == 9
    for key in ("minutes", "cpu_minutes"):
        total = meta_c[f"total_{key}"]
        assert total == pytest.approx(sum(run[key] for run in lineage), abs=2e-3), key
        assert total >= meta_b[f"total_{key}"] >= meta_a[f"total_{key}"]


def test_init_from_refuses_another_task_and_a_model_that_does_not_fit(tmp_path):
    parent = train(tiny(tmp_path, "parent", steps=1))
    stem = str(parent.checkpoint)
    with pytest.raises(ValueError, match="holds a 'sudoku-mini' model, not 'sudoku'"):
        tiny(tmp_path, "other", task="sudoku", init_from=stem)
    with pytest.raises(ValueError, match="does not fit"):
        Trainer(tiny(tmp_path, "wider", init_from=stem, overrides={"h_layers": 3}))
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        Trainer(tiny(tmp_path, "missing", init_from=str(tmp_path / "nothing")))


def test_init_from_with_ema_starts_the_average_at_the_loaded_weights(tmp_path):
    parent = train(tiny(tmp_path, "parent", steps=2))
    child = Trainer(tiny(tmp_path, "child", ema=0.9, init_from=str(parent.checkpoint)))
    stale = [
        name
        for name, p in child.model.named_parameters()
        if not torch.equal(child.ema_state[name], p.detach())
    ]
    assert stale == [], "EMA shadow not started from the init_from weights"


def poison(stem: str | Path, name: str) -> None:
    path = Path(stem).with_suffix(".safetensors")
    tensors = load_file(str(path))
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(path), metadata={"format": "pt"})


def test_init_from_a_checkpoint_with_nan_weights_is_refused(tmp_path, capsys):
    parent = train(tiny(tmp_path, "parent", steps=1))
    poison(parent.checkpoint, "H_level.blocks.0.mlp.gate_up.weight")
    config = tiny(tmp_path, "child", init_from=str(parent.checkpoint))
    with pytest.raises(ValueError, match=r"'H_level\.blocks\.0\.mlp\.gate_up\.weight'.*non-finite"):
        Trainer(config)
    capsys.readouterr()
    rc = cli.main(
        [
            "train",
            "sudoku-mini",
            "--init-from",
            str(parent.checkpoint),
            "--out-dir",
            str(tmp_path / "cli"),
            "--no-progress",
        ]
    )
    assert rc == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("hrm train: error:")
    assert "H_level.blocks.0.mlp.gate_up.weight" in err[0]
    assert not (tmp_path / "cli" / "model.trainer.pt").exists()


# ---------------------------------------------------------------------- grid mixers
@pytest.mark.parametrize(
    "mixer_args",
    [
        ["--mixer", "candidates"],
        ["--mixer", "conv", "--conv-kernel", "5", "--conv-dilations", "1,2"],
    ],
    ids=["candidates", "conv"],
)
def test_train_command_trains_the_grid_mixers(tmp_path, capsys, mixer_args):
    out = tmp_path / "run"
    rc = cli.main(
        [
            "train",
            "sudoku-mini",
            "--preset",
            "tiny",
            "--steps",
            "3",
            "--batch-size",
            "4",
            "--eval-size",
            "4",
            "--log-every",
            "1",
            "--max-segments",
            "2",
            "--out-dir",
            str(out),
            "--no-progress",
            "--threads",
            "1",
            "--json",
            *mixer_args,
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["steps"] == 3
    model, config, _ = load_checkpoint(out / "model")
    assert config.mixer == mixer_args[1]
    if config.mixer == "conv":
        assert (config.conv_kernel, config.dilations) == (5, (1, 2))
    losses = [float(r["loss"]) for r in read_csv_rows(out / "train.csv")]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert all(torch.isfinite(p).all() for p in model.parameters())


# ---------------------------------------------------------------------- signals
def same_weights(a_dir: Path, b_dir: Path) -> None:
    a = load_trainer_state(a_dir / "model.trainer.pt")
    b = load_trainer_state(b_dir / "model.trainer.pt")
    assert a["step"] == b["step"]
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert torch.equal(a["carry"]["z_H"], b["carry"]["z_H"])
    sa = load_checkpoint(a_dir / "model")[0].state_dict()
    sb = load_checkpoint(b_dir / "model")[0].state_dict()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


class Escaped(Exception):
    """Raised by the test's own handler: the trainer did not catch the signal."""


def _escape(signum, frame):
    raise Escaped(signum)


SIGNALS = pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)


@SIGNALS
def test_a_signal_ends_fit_after_the_step_in_flight_and_saves(tmp_path, signum):
    # The signal is raised in the middle of step 3 (by a wrapped train_step). Our own handler
    # is installed first, so a trainer that failed to take the signal over fails the test
    # instead of killing pytest, and we can see that fit puts it back.
    config = tiny(tmp_path, "split", steps=6, log_every=1)
    previous = signal.signal(signum, _escape)
    trainer = Trainer(config)
    try:
        real_step = trainer.train_step

        def step_then_signal():
            metrics = real_step()
            if trainer.step == 3:
                signal.raise_signal(signum)
            return metrics

        trainer.train_step = step_then_signal
        with pytest.raises(TrainingInterrupted) as info:
            trainer.fit()
        assert signal.getsignal(signum) is _escape
    finally:
        trainer.close()
        signal.signal(signum, previous)
    stop = info.value
    assert (stop.step, stop.signum, stop.exit_code) == (3, signum, 128 + signum)
    assert signal.Signals(signum).name in str(stop) and "after step 3" in str(stop)
    assert "--resume" in str(stop)
    out = Path(config.out_dir)
    assert load_trainer_state(out / "model.trainer.pt")["step"] == 3
    assert meta_of(out)["steps"] == 3
    assert [r["step"] for r in read_csv_rows(out / "train.csv")] == ["1", "2", "3"]

    train(config, resume=True)
    train(tiny(tmp_path, "straight", steps=6, log_every=1))
    same_weights(out, tmp_path / "straight")


def test_a_second_signal_stops_at_once(tmp_path):
    config = tiny(tmp_path, steps=6)
    previous = signal.signal(signal.SIGINT, _escape)
    trainer = Trainer(config)
    try:
        real_step = trainer.train_step

        def step_then_two_signals():
            metrics = real_step()
            if trainer.step == 2:
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)
            return metrics

        trainer.train_step = step_then_two_signals
        with pytest.raises(KeyboardInterrupt):
            trainer.fit()
        assert signal.getsignal(signal.SIGINT) is _escape
    finally:
        trainer.close()
        signal.signal(signal.SIGINT, previous)
    assert not (Path(config.out_dir) / "model.trainer.pt").exists()


TRAIN_ARGS = [
    "train",
    "sudoku-mini",
    "--preset",
    "tiny",
    "--batch-size",
    "4",
    "--warmup",
    "2",
    "--eval-size",
    "4",
    "--log-every",
    "1",
    "--h-cycles",
    "1",
    "--max-segments",
    "3",
    "--no-progress",
    "--threads",
    "1",
]


@SIGNALS
def test_hrm_train_stops_on_a_signal_and_resumes_to_the_same_weights(tmp_path, signum):
    out = tmp_path / "interrupted"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "hrm_agent.cli", *TRAIN_ARGS]
    # Far more steps than it will get through: the signal always lands inside the loop.
    command += ["--steps", "100000", "--out-dir", str(out)]
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(stdout, "w") as so, open(stderr, "w") as se:
        proc = subprocess.Popen(command, env=env, stdout=so, stderr=se)
        try:
            deadline = time.monotonic() + 300
            log = out / "train.csv"
            # Wait until it has logged a few steps (so it is inside Trainer.fit).
            while not (log.is_file() and len(log.read_text().splitlines()) > 3):
                if proc.poll() is not None:
                    pytest.fail(f"hrm train ended early ({proc.returncode}): {stderr.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail("hrm train made no progress in 300 s")
                time.sleep(0.05)
            proc.send_signal(signum)
            rc = proc.wait(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    err = stderr.read_text()
    assert rc == 128 + signum, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    name = signal.Signals(signum).name
    match = re.fullmatch(
        rf"hrm train: interrupted by {name} after step (\d+);.*--resume` continues from step (\d+)",
        last,
    )
    assert match is not None, last
    step = int(match.group(1))
    assert int(match.group(2)) == step >= 3
    assert load_trainer_state(out / "model.trainer.pt")["step"] == step
    assert meta_of(out)["steps"] == step
    assert len(read_csv_rows(out / "train.csv")) == step

    # Resuming to the end gives bit for bit the weights of a run that never stopped.
    end = str(step + 3)
    assert cli.main([*TRAIN_ARGS, "--steps", end, "--out-dir", str(out), "--resume"]) == 0
    ref = tmp_path / "straight"
    assert cli.main([*TRAIN_ARGS, "--steps", end, "--out-dir", str(ref)]) == 0
    same_weights(out, ref)
    assert [r["step"] for r in read_csv_rows(out / "train.csv")] == [
        str(s) for s in range(1, step + 4)
    ]


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


@pytest.mark.slow
def test_hrm_train_with_no_recipe_flags_learns_mini_sudoku(tmp_path, capsys):
    """``hrm train sudoku-mini`` with only a step count and a seed uses the task's recipe and
    solves the bundled mini test set (>= 99% exact); the recipe's model is the candidate grid.
    Measured: 100% at 300 steps for seeds 0, 1, 2 (about 20 s on one core)."""
    out = tmp_path / "mini"
    rc = cli.main(
        ["train", "sudoku-mini", "--steps", "300", "--seed", "3", "--out-dir", str(out)]
        + ["--threads", "1", "--no-progress", "--json"]
    )
    assert rc == 0
    capsys.readouterr()
    saved = json.loads((out / "model.json").read_text())
    assert saved["config"]["mixer"] == "candidates"
    assert saved["meta"]["train_config"]["preset"] == "tiny"
    assert cli.main(["eval", "sudoku-mini", "--checkpoint", str(out / "model"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == len(get_task("sudoku-mini").test_set())
    assert result["exact_accuracy"] >= 0.99, result
    assert result["q_halting"]["exact_accuracy"] >= 0.9, result  # the Q head halts on good answers


def test_recipe_fills_only_the_flags_not_given(tmp_path):
    """Without --preset the task's recipe sets the model and schedule; explicit flags win;
    with --preset the generic defaults apply."""
    from hrm_agent.recipes import recipe_for
    from hrm_agent.training.command import add_arguments, config_from_args

    def parse(*argv: str):
        import argparse

        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return config_from_args(parser.parse_args(["sudoku", *argv]))

    recipe = recipe_for("sudoku")
    config = parse()
    assert config.preset == recipe.preset
    assert config.model_config().mixer == "candidates"
    assert config.lr == recipe.train["lr"] and config.steps == recipe.train["steps"]
    assert config.difficulty == recipe.train["difficulty"]
    changed = parse("--lr", "1e-3", "--mixer", "attention", "--hidden-size", "64")
    assert changed.lr == 1e-3 and changed.model_config().mixer == "attention"
    assert changed.lr_schedule == recipe.train["lr_schedule"]
    generic = parse("--preset", "tiny")
    assert generic.model_config().mixer == "attention"
    assert generic.lr == TrainConfig().lr and generic.steps == TrainConfig().steps


def test_a_run_started_from_a_checkpoint_resumes_after_that_checkpoint_is_gone(tmp_path):
    """The model config is saved in the trainer state, so resuming needs no parent file."""
    parent = train(tiny(tmp_path, "parent", steps=2, overrides={"mixer": "mlp"}))
    child = tiny(tmp_path, "child", steps=4, init_from=str(parent.checkpoint))
    train(child, stop_at=2)
    for path in (tmp_path / "parent").glob("model.*"):
        path.unlink()
    result = train(child, resume=True)
    assert result.step == 4
    model, config, meta = load_checkpoint(result.checkpoint)
    assert config.mixer == "mlp"
    assert [run["steps"] for run in meta["lineage"]] == [2, 4]


def test_delayed_q_bootstrap_trains_q_continue_and_resumes_bit_for_bit(tmp_path):
    """q_bootstrap="delayed" fits q_continue from the next step (nonzero loss once puzzles
    continue) and keeps its stored state across a resume."""
    config = tiny(tmp_path, "straight", steps=8, q_bootstrap="delayed", log_every=1)
    trainer = Trainer(config)
    losses = [trainer.train_step()["q_continue_loss"] for _ in range(3)]
    assert losses[0] == 0.0 and losses[1] > 0.0  # nothing stored before the first step
    trainer.close()
    straight = train(tiny(tmp_path, "a", steps=8, q_bootstrap="delayed"))
    train(tiny(tmp_path, "b", steps=8, q_bootstrap="delayed"), stop_at=3)
    resumed = train(tiny(tmp_path, "b", steps=8, q_bootstrap="delayed"), resume=True)
    a = load_file(f"{straight.checkpoint}.safetensors")
    b = load_file(f"{resumed.checkpoint}.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("bootstrap", ["next-segment", "delayed"])
def test_the_q_step_cost_lowers_q_continue_targets_in_training(tmp_path, bootstrap, monkeypatch):
    """Both bootstraps hand the run's q_step_cost to q_continue's target. With one seed, the
    first target of each run is read from the same Q values, so the two differ by the cost."""
    module = trainer_module if bootstrap == "next-segment" else losses_module
    real = module.q_targets
    first: dict[float, torch.Tensor] = {}
    for cost in (0.0, 0.25):

        def recording(*args, cost=cost, **kwargs):
            target = real(*args, **kwargs)
            first.setdefault(cost, target.detach().clone())
            return target

        monkeypatch.setattr(module, "q_targets", recording)
        config = tiny(tmp_path, f"{bootstrap}-{cost}", q_bootstrap=bootstrap, q_step_cost=cost)
        trainer = Trainer(config)
        trainer.train_step()
        trainer.train_step()
        trainer.close()
    assert torch.allclose(first[0.25], (first[0.0] - 0.25).clamp_min(0.0))
    assert bool((first[0.25] < first[0.0]).any())


def test_a_diverged_loss_stops_training_with_a_clear_error_and_saves_nothing(tmp_path, monkeypatch):
    config = tiny(tmp_path, "nan", steps=6, checkpoint_every=2)
    trainer = Trainer(config)
    trainer.fit(stop_at=2)  # a good save at step 2
    saved = load_file(f"{trainer.stem}.safetensors")
    real = trainer_module.hrm_loss

    def poisoned(*args, **kwargs):
        parts = real(*args, **kwargs)
        return parts._replace(total=parts.total * float("nan"))

    monkeypatch.setattr(trainer_module, "hrm_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="diverged at step 3"):
        trainer.fit()
    trainer.close()
    after = load_file(f"{trainer.stem}.safetensors")
    assert all(torch.equal(saved[k], after[k]) for k in saved)


def test_eval_tiers_are_the_same_puzzles_whatever_the_seed_and_the_other_tiers(tmp_path):
    a = Trainer(tiny(tmp_path, "a", seed=0, eval_difficulty="easy,hard", eval_size=4))
    b = Trainer(tiny(tmp_path, "b", seed=5, eval_difficulty="hard", eval_size=4))
    np.testing.assert_array_equal(a.eval_sets()["hard"].inputs, b.eval_sets()["hard"].inputs)
    assert not np.array_equal(a.eval_sets()["easy"].inputs, a.eval_sets()["hard"].inputs)
    with pytest.raises(ValueError, match="training bank"):
        TrainConfig(task="sudoku", eval_difficulty="easy,extreme")


def test_closest_targets_supervise_the_tied_path_the_model_favours(tmp_path, monkeypatch):
    """With targets="closest" each step's labels are the task's pick from the model's own
    logits (a shortest path among the tied ones), and they are what the loss compares with."""
    from hrm_env.puzzles import maze
    from hrm_env.puzzles.tasks import MazeTask

    calls = []
    original = MazeTask.closest_targets

    def spy(self, inputs, targets, logits):
        chosen = original(self, inputs, targets, logits)
        calls.append((inputs.copy(), logits.shape, chosen))
        return chosen

    monkeypatch.setattr(MazeTask, "closest_targets", spy)
    seen = []
    real_loss = trainer_module.hrm_loss

    def loss_spy(out, labels, *args, **kwargs):
        seen.append(labels.cpu().numpy())
        return real_loss(out, labels, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "hrm_loss", loss_spy)
    config = tiny(
        tmp_path,
        task="maze",
        batch_size=2,
        steps=3,
        eval_size=2,
        targets="closest",
        overrides={"mixer": "conv", "hidden_size": 16, "max_segments": 2},
    )
    train(config)
    assert len(calls) == 3
    assert len(seen) == 3
    for (inputs, shape, chosen), labels in zip(calls, seen, strict=True):
        assert shape == (2, 900, 6)
        np.testing.assert_array_equal(labels, chosen)
        assert maze.check_batch(inputs, chosen).all()


def test_lineage_totals_count_device_runs_in_cpu_minutes_only_when_converted():
    from hrm_agent.training.lineage import lineage_totals

    cpu = {"run": "a", "steps": 100, "minutes": 2.0, "cpu_minutes": 1.5, "device": "cpu"}
    gpu = {"run": "b", "steps": 300, "minutes": 1.0, "cpu_minutes": 1.0, "device": "cuda (H200)"}
    totals = lineage_totals([cpu, gpu])
    assert totals["total_steps"] == 400 and totals["total_minutes"] == 3.0
    # The device run's host process time stands in, and the total says it is incomplete.
    assert totals["total_cpu_minutes"] == 2.5 and not totals["total_cpu_minutes_complete"]
    assert totals["total_device_minutes"] == 1.0
    converted = lineage_totals([cpu, {**gpu, "cpu_minutes_equivalent": 3.0}])
    assert converted["total_cpu_minutes"] == 4.5 and converted["total_cpu_minutes_complete"]
    assert lineage_totals([cpu])["total_cpu_minutes_complete"]


def test_the_old_import_path_names_the_same_objects():
    """``hrm_agent.train`` stays a re-export of the training package (users' and torchrun's)."""
    import hrm_agent
    import hrm_agent.train as old
    import hrm_agent.training as package

    for name in package.__all__:
        assert getattr(old, name) is getattr(package, name), name
    assert old.add_arguments is cli._load("train").add_arguments
    assert hrm_agent.Trainer is Trainer and hrm_agent.TrainConfig is TrainConfig


def test_maze_flags_reach_the_model_and_run_config():
    """--output-mask and --aux-target take what they need from the task; the segment weights
    and the block flags reach their configs; a task without a mask says so."""
    import argparse

    from hrm_agent.training.command import add_arguments, config_from_args
    from hrm_env.puzzles.tasks import get_task

    def parse(*argv: str):
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return config_from_args(parser.parse_args(list(argv)))

    config = parse(
        "maze", "--output-mask", "--aux-target", "distance3", "--aux-weight", "0.5",
        "--segment-weighting", "linear", "--conv-mix", "full", "--zero-init-residual",
    )  # fmt: skip
    model = config.model_config()
    assert model.output_choices == get_task("maze").output_choices
    assert (model.aux_target, model.aux_classes) == ("distance3", 4)
    assert (model.conv_mix, model.zero_init_residual) == ("full", True)
    assert (config.aux_weight, config.segment_weighting) == (0.5, "linear")
    recipe = parse("maze")  # the maze recipe has the mask and the measured signal
    assert recipe.model_config().output_choices == get_task("maze").output_choices
    assert (recipe.targets, recipe.weight_decay, recipe.grad_clip) == ("closest", 0.05, 1.0)
    plain = parse("maze", "--preset", "tiny", "--mixer", "conv").model_config()
    assert plain.output_choices is None and plain.aux_target is None
    assert parse("maze", "--weight-decay", "0.2").weight_decay == 0.2  # a flag beats the recipe
    assert recipe.ema > 0 and parse("maze", "--ema", "0").ema == 0.0  # so does --ema 0
    assert parse("maze", "--preset", "tiny", "--mixer", "conv").ema == 0.0  # no recipe: off
    assert parse("maze", "--max-aggregation").model_config().max_aggregation == (1,)
    assert parse("maze", "--closed-walls").model_config().closed_walls == (1,)
    assert recipe.model_config().closed_walls is None
    assert recipe.model_config().max_aggregation is None
    assert (recipe.model_config().aux_target, recipe.model_config().aux_classes) == ("on-path", 2)
    assert parse("maze", "--aux-target", "none").model_config().aux_target is None
    assert parse("maze", "--aux-target", "none").model_config().aux_classes == 0
    assert recipe.q_step_cost == 0.0 and parse("maze", "--q-step-cost", "0.01").q_step_cost == 0.01
    with pytest.raises(ValueError, match="--max-aggregation: task 'sudoku' has no walls"):
        parse("sudoku", "--max-aggregation")
    assert recipe.carry_noise == 0.0 and parse("sudoku", "--carry-noise", "0.3").carry_noise == 0.3
    with pytest.raises(ValueError, match="--output-mask: task 'sudoku' has no output mask"):
        parse("sudoku", "--output-mask")
    with pytest.raises(ValueError, match="no target 'depth'; choose from: .*on-path.*none"):
        parse("maze", "--aux-target", "depth")


def test_output_mask_and_aux_target_train_a_tiny_maze_model(tmp_path):
    """A few steps with the maze levers on: the loss is finite, the masked model keeps walls,
    S and G in every answer, and the checkpoint reloads with its mask, aux head and walls."""
    from hrm_env.puzzles.tasks import get_task

    task = get_task("maze")
    config = TrainConfig(
        task="maze", preset="tiny", batch_size=2, steps=3, lr=1e-3, eval_size=2,
        eval_difficulty="easy", out_dir=str(tmp_path / "m"), progress=False,
        segment_weighting="linear",
        overrides={"mixer": "conv", "hidden_size": 16, "expansion": 2.0, "h_cycles": 1,
                   "max_segments": 2, "output_choices": task.output_choices,
                   "aux_target": "on-path", "aux_classes": 2,
                   "max_aggregation": task.wall_tokens},
    )  # fmt: skip
    result = train(config)
    model, model_config, _ = load_checkpoint(result.checkpoint)
    assert model_config.output_choices == task.output_choices and model.aux_head is not None
    assert model_config.max_aggregation == (1,) and bool(model.wall_table[1])
    assert model.L_level.blocks[0].mixer.max_gate.abs().max() > 0  # trained, and saved
    batch = task.sample(np.random.default_rng(0), 2, "easy")
    tokens = torch.from_numpy(batch.inputs.astype(np.int64))
    with torch.no_grad():
        _, out = model(model.initial_carry(2), tokens)
    answer = out.logits.argmax(-1)
    fixed = tokens != 2
    assert torch.equal(answer[fixed], tokens[fixed])


def test_init_from_adds_max_gates_at_zero_so_the_model_computes_what_its_parent_did(tmp_path):
    """--init-from a conv model without max aggregation into one with it: the gates are the
    only new parameters, they start at 0, and the first answers equal the parent's. An
    auxiliary head may be new too; nothing else may."""
    from hrm_env.puzzles.tasks import get_task

    task = get_task("maze")
    common = dict(
        task="maze", preset="tiny", batch_size=2, steps=1, lr=1e-3, eval_size=2,
        eval_difficulty="easy", progress=False,
    )  # fmt: skip
    overrides = {"mixer": "conv", "hidden_size": 16, "expansion": 2.0, "h_cycles": 1,
                 "max_segments": 2, "output_choices": task.output_choices}  # fmt: skip
    parent = train(TrainConfig(out_dir=str(tmp_path / "p"), overrides=overrides, **common))
    child = Trainer(
        TrainConfig(
            out_dir=str(tmp_path / "c"),
            init_from=str(parent.checkpoint),
            overrides={"max_aggregation": task.wall_tokens},
            **common,
        )
    )
    gates = [m.max_gate for m in child.model.modules() if getattr(m, "max_gate", None) is not None]
    assert gates and all(bool((g == 0).all()) for g in gates)
    source = load_checkpoint(str(parent.checkpoint))[0]
    tokens = torch.from_numpy(
        task.sample(np.random.default_rng(3), 2, "easy").inputs.astype(np.int64)
    )
    with torch.no_grad():
        _, ours = child.model(child.model.initial_carry(2), tokens)
        _, theirs = source(source.initial_carry(2), tokens)
    torch.testing.assert_close(ours.logits, theirs.logits)
    # An auxiliary head (training only) may be new as well; the shared weights are the parent's.
    aux = Trainer(
        TrainConfig(
            out_dir=str(tmp_path / "a"),
            init_from=str(parent.checkpoint),
            overrides={"aux_target": "on-path", "aux_classes": 2},
            **common,
        )
    )
    assert aux.model.aux_head is not None
    for name, tensor in source.state_dict().items():
        assert torch.equal(aux.model.state_dict()[name], tensor), name
    # Any other mismatch is still refused.
    with pytest.raises(ValueError, match="does not fit"):
        Trainer(
            TrainConfig(
                out_dir=str(tmp_path / "w"),
                init_from=str(parent.checkpoint),
                overrides={"hidden_size": 32},
                **common,
            )
        )


def test_training_refuses_a_tier_of_held_out_test_puzzles():
    with pytest.raises(ValueError, match="'extreme-mix' draws from held-out test puzzles"):
        TrainConfig(task="sudoku", difficulty="hard:0.5,extreme-mix:0.5")
    TrainConfig(task="sudoku", difficulty="hard:0.5,extreme:0.5")  # the train bank is fine
