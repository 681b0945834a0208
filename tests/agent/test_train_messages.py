"""What ``hrm train`` tells its user: resumption, progress without a terminal, flag names in
errors, the tensorboard hint, and bad ``--threads``."""

from __future__ import annotations

import re
import sys

import pytest

from hrm_agent import cli
from hrm_agent.training import logs
from hrm_agent.training.command import name_flags
from hrm_agent.training.options import TrainConfig

TINY = [
    "train",
    "sudoku-mini",
    "--preset",
    "tiny",
    "--hidden-size",
    "16",
    "--h-layers",
    "1",
    "--l-layers",
    "1",
    "--h-cycles",
    "1",
    "--max-segments",
    "2",
    "--batch-size",
    "4",
    "--eval-size",
    "2",
    "--threads",
    "1",
]


def hrm_train(capsys, out, *flags: str) -> tuple[int, list[str]]:
    """Run ``hrm train`` with the tiny model; (exit code, stderr lines)."""
    capsys.readouterr()
    rc = cli.main([*TINY, "--out-dir", str(out), *flags])
    return rc, capsys.readouterr().err.splitlines()


def test_a_resumed_run_says_which_run_and_step_before_it_trains(tmp_path, capsys):
    out = tmp_path / "run"
    rc, err = hrm_train(capsys, out, "--steps", "3", "--stop-at", "2", "--no-progress")
    assert rc == 0 and not any(line.startswith("resuming") for line in err)
    rc, err = hrm_train(capsys, out, "--steps", "3", "--resume", "--no-progress")
    assert rc == 0
    assert err.count(f"resuming {out} from step 2") == 1
    first_step = next(i for i, line in enumerate(err) if line.startswith("step 3/3"))
    assert err.index(f"resuming {out} from step 2") < first_step


def test_without_a_bar_training_prints_a_line_now_and_then(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    args = ("--steps", "4", "--log-every", "1", "--eval-every", "2")
    rc, err = hrm_train(capsys, tmp_path / "slow", *args)
    assert rc == 0
    steps = [line.split(":")[0] for line in err if re.match(r"step \d/4: loss", line)]
    assert steps == ["step 1/4", "step 4/4"]  # the first row, then the last: 30 s never passed
    evals = [line for line in err if re.fullmatch(r"step \d/4: eval exact test \d\.\d{3}", line)]
    assert [line.split(":")[0] for line in evals] == ["step 2/4", "step 4/4"]
    monkeypatch.setattr(logs, "PROGRESS_LINE_SECONDS", 0.0)
    rc, err = hrm_train(capsys, tmp_path / "every", *args, "--no-progress")
    line = re.compile(r"step (\d)/4: loss \d+\.\d{4}, lr \d\.\d\de[-+]\d\d, \d+ samples/s")
    assert [int(m.group(1)) for m in map(line.fullmatch, err) if m] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "flags, message",
    [
        (("--warmup", "-1"), "--warmup must be an int >= 0, got -1"),
        (("--halt-exploration", "2"), "--halt-exploration must lie in [0, 1], got 2.0"),
        (("--hidden-size", "0"), "--hidden-size must be a positive int, got 0"),
        (("--num-heads", "3"), "--num-heads=3 must divide --hidden-size=16"),
        (("--lr-min-ratio", "2"), "--lr-min-ratio must lie in [0, 1], got 2.0"),
        (("--threads", "0"), "--threads must be >= 1, got 0"),
        (("--threads", "-2"), "--threads must be >= 1, got -2"),
    ],
)
def test_errors_name_the_flags_not_the_fields(tmp_path, capsys, flags, message):
    rc, err = hrm_train(capsys, tmp_path / "bad", "--steps", "1", *flags)
    assert rc == 2
    assert err == [f"hrm train: error: {message}"]
    assert not (tmp_path / "bad").exists()


def test_library_errors_keep_the_field_names_and_only_the_cli_translates():
    with pytest.raises(ValueError, match="^lr_warmup_steps must be an int >= 0"):
        TrainConfig(task="sudoku-mini", preset="tiny", lr_warmup_steps=-1)
    # Prose is left alone: only identifiers, and a plain word as the subject or before "=".
    assert name_flags("the loss is nan; try a lower lr") == "the loss is nan; try a lower lr"
    assert name_flags("weight_decay and grad_clip must be >= 0") == (
        "--weight-decay and --grad-clip must be >= 0"
    )


def test_without_tensorboard_training_runs_and_says_once_how_to_install_it(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    monkeypatch.setattr(logs, "_hinted", False)
    rc, first = hrm_train(capsys, tmp_path / "a", "--steps", "1", "--no-progress")
    assert rc == 0 and not (tmp_path / "a" / "tb").exists()
    assert (tmp_path / "a" / "train.csv").is_file()
    rc, second = hrm_train(capsys, tmp_path / "b", "--steps", "1", "--no-progress")
    hints = [line for line in first + second if "tensorboard" in line]
    assert rc == 0 and hints == [logs.TENSORBOARD_HINT]
    assert "pip install 'hrm-reasoning[tensorboard]'" in hints[0]
