"""Smoke runs of the env examples, with a tiny random model standing in for the shipped one."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def tiny_shipped_model(monkeypatch, tiny_reasoner):
    """Make ``load_pretrained`` (what the envs call without a reasoner) give a tiny model."""
    pytest.importorskip("torch")
    import hrm_agent

    calls = []

    def fake(task, device="cpu", checkpoint=None):
        calls.append(task)
        return tiny_reasoner(task)

    monkeypatch.setattr(hrm_agent, "load_pretrained", fake, raising=False)
    return calls


def run_example(name, argv, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [name, *argv])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")


def test_quickstart(tiny_shipped_model, monkeypatch, tmp_path, capsys):
    run_example("quickstart.py", [], monkeypatch, tmp_path)
    assert tiny_shipped_model == ["sudoku"]
    assert "halted after" in capsys.readouterr().out


def test_watch_example_saves_a_gif(tiny_shipped_model, monkeypatch, tmp_path, capsys):
    run_example("watch.py", ["--puzzles", "1", "--save", "w.gif"], monkeypatch, tmp_path)
    assert (tmp_path / "w.gif").stat().st_size > 0
    assert "puzzle 1:" in capsys.readouterr().out


def test_record_video_example(tiny_shipped_model, monkeypatch, tmp_path):
    pytest.importorskip("moviepy")
    run_example(
        "record_video.py",
        ["--env", "HRM-SudokuMini-v0", "--episodes", "1", "--folder", "v"],
        monkeypatch,
        tmp_path,
    )
    assert len(list((tmp_path / "v").glob("*.mp4"))) == 1


def test_custom_puzzle_example(tiny_shipped_model, monkeypatch, tmp_path, capsys):
    run_example("custom_puzzle.py", [], monkeypatch, tmp_path)
    out = capsys.readouterr().out
    # With no argument: a fresh hard puzzle, shown as the string a user would pass, then solved.
    first, rest = out.split("\n", 1)
    drawn = first.removeprefix("a fresh hard puzzle: ")
    assert first.startswith("a fresh hard puzzle: ") and len(drawn) == 81
    assert rest.startswith(f"puzzle:\n{drawn[0]} ") and "cycle 1:" in out
    given = "8..........36......7..9.2...5...7.......457.....1...3...1....68..85...1..9....4.."
    run_example("custom_puzzle.py", [given], monkeypatch, tmp_path)
    assert capsys.readouterr().out.startswith("puzzle:\n8 ")
    with pytest.raises(SystemExit, match="not a valid puzzle"):
        run_example("custom_puzzle.py", ["12345"], monkeypatch, tmp_path)


def test_maze_views_example(tiny_shipped_model, monkeypatch, tmp_path, capsys):
    run_example("maze_views.py", ["--mazes", "1", "--difficulty", "easy"], monkeypatch, tmp_path)
    out = capsys.readouterr().out
    assert tiny_shipped_model == ["maze", "maze"]
    assert out.startswith("maze 1: one view ") and "view" in out.split("eight views")[1]
    assert out.rstrip().endswith("/1") and "solved: one view " in out
