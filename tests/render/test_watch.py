"""``watch``: Q-head halting, headless animation files, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from hrm_env.envs.reasoner import ScriptedReasoner
from hrm_env.render import watch as watch_module
from hrm_env.render.watch import has_display, q_head_action, watch, write_animation


def test_q_head_rule_halts_when_halt_beats_continue():
    assert q_head_action({"q": np.array([0.5, -0.2], dtype=np.float32)}) == 1
    assert q_head_action({"q": np.array([-3.0, 0.1], dtype=np.float32)}) == 0


def test_dummy_video_driver_means_no_display(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    assert not has_display()


def test_watch_saves_a_gif_that_halts_by_the_q_head(tmp_path, capsys):
    from PIL import Image

    path = tmp_path / "solve.gif"
    code = watch(
        "sudoku-mini",
        seed=0,
        save=path,
        episodes=2,
        fps=10,
        reasoner=ScriptedReasoner("sudoku-mini", solve_at=3),
    )
    assert code == 0
    out = capsys.readouterr().out
    # The scripted Q head says halt from cycle 3 on, when the answer is right.
    assert out.count("solved after 3 cycles, halted by its Q head") == 2
    with Image.open(path) as gif:
        # Per puzzle: cycles 1, 2, 3, then the committed answer, held longer.
        assert gif.n_frames == 8
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    assert durations[:4] == [100, 100, 100, 1500] and durations[4:] == durations[:4]


def test_watch_without_display_writes_a_default_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    assert (
        watch(
            "sudoku-mini",
            seed=1,
            reasoner=ScriptedReasoner("sudoku-mini", solve_at=None),
            max_cycles=3,
        )
        == 0
    )
    assert (tmp_path / "hrm-sudoku-mini.gif").is_file()
    out = capsys.readouterr().out
    assert "no display" in out and "at the cycle limit" in out


def test_watch_writes_mp4(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    path = tmp_path / "solve.mp4"
    watch("maze", seed=0, save=path, fps=8, reasoner=ScriptedReasoner("maze", solve_at=2))
    assert path.stat().st_size > 1000


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"save": "solve.avi"}, ValueError, "must end in .gif or .mp4"),
        ({"fps": 0}, ValueError, "fps"),
        ({"episodes": 0}, ValueError, "episodes"),
        ({"difficulty": "galaxy-brain"}, ValueError, "unknown difficulty"),
    ],
)
def test_watch_bad_arguments(tmp_path, kwargs, error, match):
    if "save" in kwargs:
        kwargs["save"] = tmp_path / kwargs["save"]
    else:
        kwargs["save"] = tmp_path / "x.gif"
    with pytest.raises(error, match=match):
        watch("sudoku-mini", reasoner=ScriptedReasoner("sudoku-mini"), **kwargs)


def test_mp4_without_a_writer_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(watch_module, "_mp4_backend", lambda: None)
    with pytest.raises(ImportError, match="pip install"):
        write_animation(tmp_path / "a.mp4", [np.zeros((8, 8, 3), np.uint8)], [100])


def test_watch_runs_to_the_models_own_cycle_limit_by_default(tmp_path, capsys):
    """A reasoner never solving, whose model was trained to 1 x 5 cycles: the episode ends at
    the model's limit, not at a fixed 16; an explicit max_cycles still wins."""
    from types import SimpleNamespace

    from hrm_env.render.watch import model_cycle_limit

    reasoner = ScriptedReasoner("sudoku-mini", solve_at=None)
    reasoner.model = SimpleNamespace(config=SimpleNamespace(max_cycles=5))  # as HRMConfig
    assert model_cycle_limit(reasoner) == 5
    assert model_cycle_limit(ScriptedReasoner("sudoku-mini", solve_at=None)) == 16
    for limit, expected in ((None, 5), (3, 3)):
        assert watch("sudoku-mini", seed=0, save=tmp_path / "a.gif", episodes=1, fps=10,
                     reasoner=reasoner, max_cycles=limit) == 0  # fmt: skip
        assert f"after {expected} cycles" in capsys.readouterr().out


def test_watch_shows_the_rated_sudoku_tier_unless_told(tmp_path, monkeypatch):
    """9x9 Sudoku's task default is the benchmark tier (extreme); a watch with no tier draws
    from `hard` instead, the hardest generated tier, and an explicit tier is kept as given."""
    from hrm_env.puzzles.sudoku import tier_of

    asked, envs = [], []
    real_env = watch_module.ReasoningEnv

    def recording_env(*args, **kwargs):
        asked.append(kwargs["difficulty"])
        envs.append(real_env(*args, **kwargs))
        return envs[-1]

    monkeypatch.setattr(watch_module, "ReasoningEnv", recording_env)
    for tier in (None, "medium"):
        assert watch("sudoku", difficulty=tier, seed=3, save=tmp_path / "a.gif", episodes=1,
                     fps=10, reasoner=ScriptedReasoner("sudoku", solve_at=2)) == 0  # fmt: skip
    assert asked == [None, "medium"]  # watch leaves the choice to the envs' table
    assert [env.unwrapped.difficulty for env in envs] == ["hard", "medium"]
    # The puzzles drawn really are of those tiers (the rating is the solver's guess count).
    assert [tier_of(int(env.unwrapped._rating)) for env in envs] == ["hard", "medium"]
