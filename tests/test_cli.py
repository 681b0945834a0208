"""The ``hrm`` command line: dispatch, errors, and the data command end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hrm_agent.cli import main
from hrm_agent.distribution import DISTRIBUTION, distribution_version, require
from hrm_env.puzzles import maze, sudoku

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["data", "sudoku", "--workers", "0"],
            "argument --workers: must be an integer >= 1, got 0",
        ),
        (
            ["data", "sudoku", "--workers", "-2"],
            "argument --workers: must be an integer >= 1, got -2",
        ),
        (["data", "sudoku", "--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
        (["data", "sudoku", "--seed", "x"], "argument --seed: expected an integer, got 'x'"),
        (["watch", "sudoku", "--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
        (["watch", "sudoku", "--episodes", "0"], "argument --episodes: must be an integer >= 1"),
    ],
)
def test_counts_and_seeds_out_of_range_name_their_flag(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--out", str(tmp_path / "x.csv")] if argv[0] == "data" else argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x.csv").exists()


def test_generate_batch_refuses_zero_or_negative_workers():
    from hrm_env.puzzles.datagen import generate_batch

    for workers in (0, -2):
        with pytest.raises(ValueError, match=f"workers must be at least 1.*got {workers}"):
            generate_batch("sudoku-mini", None, 2, workers=workers)
    with pytest.raises(ValueError, match="seed must be non-negative, got -1"):
        generate_batch("sudoku-mini", None, 2, seed=-1)


def test_version_prints_the_distribution_and_its_version(capsys):
    from hrm_agent import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.split()
    assert out[0] == "hrm-reasoning" and out[1] == distribution_version()
    # Installed or not, the version is the one pyproject.toml declares.
    assert distribution_version() == __version__ == _pyproject()["project"]["version"]


def test_version_falls_back_to_the_package_when_not_installed(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    from hrm_agent import __version__

    assert distribution_version() == __version__


def test_pyproject_names_a_free_distribution_and_keeps_the_optional_packages_optional():
    project = _pyproject()["project"]
    assert project["name"] == DISTRIBUTION
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")
    hard = " ".join(project["dependencies"])
    extras = project["optional-dependencies"]
    for name, extra in (("tensorboard", "tensorboard"), ("matplotlib", "viz")):
        assert name not in hard
        assert any(d.startswith(name) for d in extras[extra])
        # The test extra still pulls everything the suite exercises.
        assert any(d.startswith(name) for d in extras["test"])
    assert project["scripts"] == {"hrm": "hrm_agent.cli:main"}


def test_a_missing_optional_package_names_the_extra_that_brings_it():
    with pytest.raises(ImportError) as err:
        require("hrm_no_such_module.figure", "viz", "the frontier plot", "or pass --no-plot")
    assert str(err.value) == (
        "the frontier plot needs hrm_no_such_module: pip install 'hrm-reasoning[viz]', "
        "or pass --no-plot"
    )
    assert require("json", "viz", "x").dumps([1]) == "[1]"


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    return tomllib.loads((ROOT / "pyproject.toml").read_text())
