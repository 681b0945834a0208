"""The ``hrm`` command line: dispatch, errors, and the data command end to end."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hrm_agent.cli import main
from hrm_env.puzzles import maze, sudoku


def test_unknown_command_is_a_clear_error(capsys):
    assert main(["nonsense"]) == 2
    assert "unknown command 'nonsense'" in capsys.readouterr().err


def test_bad_input_gives_an_error_line_not_a_traceback(capsys, tmp_path):
    assert main(["data", "chess", "-n", "3", "--out", str(tmp_path / "x.csv")]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'chess'" in err and "Traceback" not in err


def test_data_maze_writes_hard_mazes(tmp_path, capsys):
    out = tmp_path / "mazes.csv"
    code = main(["data", "maze", "-n", "5", "--out", str(out), "--workers", "1", "--no-progress"])
    assert code == 0
    assert "wrote 5 hard maze" in capsys.readouterr().out
    mazes = maze.read_csv(out)
    assert len(mazes) == 5 and (mazes.ratings > 110).all()
    assert maze.check_batch(mazes.questions, mazes.answers).all()


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from hrm_agent.cli import main\n"
        "try:\n    main(['data', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch imported:', 'torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "--difficulty" in result.stdout
    assert result.stdout.strip().endswith("torch imported: False")


def one_error_line(err: str, command: str) -> str:
    """The message of an ``hrm COMMAND: error: ...`` stderr that holds that line only."""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    prefix = f"hrm {command}: error: "
    assert err.startswith(prefix), err
    return err[len(prefix) :].strip()


@pytest.mark.parametrize("command", ["eval", "watch"])
def test_an_unusable_device_is_one_error_line(command, capsys, monkeypatch):
    import torch

    # No GPU, even on a machine that has one: the check must not depend on where it runs.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main([command, "sudoku-mini", "--device", "cuda"]) == 2
    message = one_error_line(capsys.readouterr().err, command)
    assert message.startswith("device 'cuda': ") and "available here: cpu" in message


def test_eval_names_a_binary_data_file(capsys, tmp_path):
    path = tmp_path / "puzzles.csv"
    path.write_bytes(bytes(range(256)) * 4)
    assert main(["eval", "sudoku-mini", "--data", str(path)]) == 2
    message = one_error_line(capsys.readouterr().err, "eval")
    assert message.startswith(f"{path}: not a UTF-8 text file")


def test_eval_names_the_size_of_a_file_for_the_other_sudoku(capsys, tmp_path):
    path = tmp_path / "mini.csv"
    mini = sudoku.generate(np.random.default_rng(0), "hard", 3, size=4)
    sudoku.write_csv(path, mini)
    assert main(["eval", "sudoku", "--data", str(path)]) == 2
    message = one_error_line(capsys.readouterr().err, "eval")
    assert "holds 4x4 (16-cell) Sudoku puzzles, but 9x9 puzzles (81 cells)" in message


def test_data_checks_its_arguments_before_any_progress_bar(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # where a bar would be drawn
    assert main(["data", "sudoku", "-n", "0", "--out", str(tmp_path / "x.csv")]) == 2
    assert one_error_line(capsys.readouterr().err, "data") == "-n must be >= 1, got 0"
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("tty", [True, False])
def test_data_shows_a_progress_bar_only_on_a_terminal(tty, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: tty)
    out = tmp_path / "mini.csv"
    assert main(["data", "sudoku-mini", "-n", "3", "--out", str(out), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert ("sudoku-mini hard" in err) == tty, err
