"""The ``hrm`` command line: dispatch, errors, and the data command end to end."""

from __future__ import annotations

import subprocess
import sys

from hrm_agent.cli import main
from hrm_env.puzzles import maze


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
