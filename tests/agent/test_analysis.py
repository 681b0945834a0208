"""hrm analyze: the pure quantities against hand computation, the tracer against the model,
and the command writing every figure and the numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hrm_agent import analysis
from hrm_agent.analysis import (
    FIGURES,
    cycle_traces,
    forward_residuals,
    panel_values,
    participation_ratio,
    pca_2d,
    trace_episodes,
)
from hrm_agent.checkpoint import save_checkpoint
from hrm_agent.cli import main
from hrm_agent.config import HRMConfig
from hrm_agent.model import HRM


@pytest.fixture(autouse=True)
def _headless(monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


@pytest.fixture(scope="module")
def tiny() -> HRM:
    model = HRM(
        HRMConfig.preset("tiny", max_segments=2), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        # A non-zero Q head, so Q traces vary with the state.
        model.q_head.weight.normal_(generator=torch.Generator().manual_seed(1))
    return model.eval()


def puzzles(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 10, size=(n, 81), dtype=np.uint8)


def hadamard(k: int) -> np.ndarray:
    """Sylvester Hadamard matrix of size 2**k: orthogonal columns, all but the first zero-mean."""
    h = np.ones((1, 1))
    for _ in range(k):
        h = np.block([[h, h], [h, -h]])
    return h


# ---------------------------------------------------------------------------- forward residuals
def test_forward_residuals_of_a_hand_made_sequence():
    states = np.array([[1.0, 0.0], [1.0, 1.0], [4.0, 5.0], [4.0, 5.0]])
    # Differences (0, 1), (3, 4), (0, 0): norms 1, 5, 0; previous norms 1, sqrt 2, sqrt 41.
    np.testing.assert_allclose(forward_residuals(states, relative=False), [1.0, 5.0, 0.0])
    np.testing.assert_allclose(forward_residuals(states), [1.0, 5.0 / math.sqrt(2), 0.0])


def test_forward_residuals_flatten_each_state():
    z = np.zeros((3, 2, 2))
    z[0] = 1.0  # norm 2
    z[1] = 1.0
    z[1, 0, 0] = 4.0  # differs by 3 in one entry
    z[2] = -1.0  # differs by (5, 2, 2, 2) from z[1]: norm sqrt(37)
    np.testing.assert_allclose(forward_residuals(z, relative=False), [3.0, math.sqrt(37)])
    np.testing.assert_allclose(forward_residuals(z), [1.5, math.sqrt(37) / math.sqrt(19)])


@settings(max_examples=30, deadline=None)
@given(
    arrays(np.float64, (5, 3, 4), elements=st.floats(-10, 10, allow_subnormal=False)),
    st.floats(0.1, 100),
)
def test_relative_residuals_ignore_scale_and_absolute_ones_scale(states, c):
    states = states + 20.0  # keep every state far from zero
    rel, ab = forward_residuals(states), forward_residuals(states, relative=False)
    np.testing.assert_allclose(forward_residuals(c * states), rel, rtol=1e-9, atol=1e-12)
    # atol: two states whose entries differ by ~1e-14 differ in c * states by rounding noise.
    scaled = forward_residuals(c * states, relative=False)
    np.testing.assert_allclose(scaled, c * ab, rtol=1e-9, atol=1e-12 * c)
    assert (ab >= 0).all() and ab.shape == (4,)


def test_forward_residuals_reject_bad_input():
    with pytest.raises(ValueError, match="at least 2 states"):
        forward_residuals(np.ones((1, 3)))
    with pytest.raises(ValueError, match="all-zero state"):
        forward_residuals(np.array([[0.0, 0.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        forward_residuals(np.array([[1.0], [np.nan]]))


# ---------------------------------------------------------------------------- participation ratio
def test_participation_ratio_of_a_known_spectrum():
    assert participation_ratio([4.0, 1.0, 1.0, 0.0]) == pytest.approx(36 / 18)
    assert participation_ratio(np.ones(7)) == pytest.approx(7)
    assert participation_ratio([3.0, 0.0, 0.0]) == pytest.approx(1)


def test_participation_ratio_of_data_with_a_known_covariance_spectrum():
    # Columns 1..4 of an 8x8 Hadamard matrix are zero-mean and orthogonal: scaled by sqrt(λ)
    # they give data whose covariance is exactly diag(λ) * 8 / 7 (PR is scale-free).
    x = hadamard(3)[:, 1:5] * np.sqrt([4.0, 1.0, 1.0, 0.0])
    assert participation_ratio(x) == pytest.approx(2.0)
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))
    assert participation_ratio(x @ rotation + 3.0) == pytest.approx(2.0)


def test_participation_ratio_of_isotropic_data_is_its_dimension():
    d = 6
    x = hadamard(3)[:, 1 : d + 1] * 2.5  # equal variance along 6 orthogonal directions
    assert participation_ratio(x) == pytest.approx(d)


@settings(max_examples=30, deadline=None)
@given(arrays(np.float64, (12, 5), elements=st.floats(-5, 5, allow_subnormal=False)))
def test_participation_ratio_lies_between_one_and_the_rank(x):
    eig = np.linalg.eigvalsh(np.cov(x, rowvar=False)).clip(min=0)
    if eig.sum() < 1e-6:
        return  # no variance: rejected, tested below
    pr = participation_ratio(x)
    assert pr == pytest.approx(participation_ratio(eig), rel=1e-6)
    assert 1.0 - 1e-9 <= pr <= np.linalg.matrix_rank(x - x.mean(0)) + 1e-9


def test_participation_ratio_rejects_bad_input():
    for bad, msg in (
        (np.zeros(3), "no variance"),
        (np.ones((4, 2)), "no variance"),
        ([1.0, -1.0], ">= 0"),
        (np.ones((1, 3)), "at least 2 samples"),
        (np.ones((2, 2, 2)), "1-D spectrum"),
    ):
        with pytest.raises(ValueError, match=msg):
            participation_ratio(bad)


# ---------------------------------------------------------------------------- PCA
def test_pca_of_points_on_a_line():
    u = np.array([1.0, 2.0, 2.0]) / 3.0  # unit direction
    t = np.array([-2.0, 0.0, 1.0, 4.0])
    x = np.array([5.0, -1.0, 0.5]) + t[:, None] * u
    projected, explained = pca_2d(x)
    assert projected.shape == (4, 2)
    np.testing.assert_allclose(explained, [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(projected[:, 1], 0.0, atol=1e-12)
    # PC1 is the line: coordinates are t, centred, up to the (fixed) sign.
    assert np.allclose(projected[:, 0], t - t.mean()) or np.allclose(
        projected[:, 0], -(t - t.mean())
    )


def test_pca_explained_variance_of_a_known_plane():
    # Variances 9 and 1 along two orthogonal directions of R^4, nothing else.
    h = hadamard(3)
    x = np.stack([3 * h[:, 1], h[:, 2], np.zeros(8), np.zeros(8)], axis=1)
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))
    projected, explained = pca_2d(x @ rotation)
    np.testing.assert_allclose(explained, [0.9, 0.1])
    np.testing.assert_allclose(np.abs(projected), np.abs(x[:, :2]), atol=1e-12)
    # Deterministic: the same data give the same orientation.
    np.testing.assert_array_equal(pca_2d(x @ rotation)[0], projected)


def test_pca_rejects_bad_input():
    with pytest.raises(ValueError, match="n >= 2"):
        pca_2d(np.ones((1, 3)))
    with pytest.raises(ValueError, match="no variance"):
        pca_2d(np.ones((5, 3)))


# ---------------------------------------------------------------------------- tracing
def test_cycle_traces_is_exactly_one_model_cycle(tiny):
    tokens = torch.from_numpy(puzzles(3).astype(np.int64))
    with torch.no_grad():
        x = tiny.embed(tokens)
        carry = tiny.cycle(tiny.initial_carry(3), x)  # start from a non-initial state
        expected = tiny.cycle(carry, x)
        out = tiny.readout(expected)
    new, tr = cycle_traces(tiny, carry, x)
    assert torch.equal(new.z_H, expected.z_H) and torch.equal(new.z_L, expected.z_L)
    T = tiny.config.l_cycles
    assert tr.res_L.shape == tr.abs_L.shape == (3, T)
    assert tr.res_H.shape == tr.q_halt.shape == tr.q_continue.shape == (3,)
    assert tr.logits.shape == (3, 81, 10) and tr.pooled_L.shape == (3, T, 32)
    np.testing.assert_allclose(tr.logits, out.logits.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tr.q_halt, out.q_halt.numpy(), rtol=1e-6, atol=1e-6)
    # The z_H residual by hand: one H update from the old z_H to the new one.
    diff = (expected.z_H - carry.z_H).flatten(1).norm(dim=1)
    np.testing.assert_allclose(tr.abs_H, diff.numpy(), rtol=1e-5)
    np.testing.assert_allclose(tr.res_H, (diff / carry.z_H.flatten(1).norm(dim=1)).numpy(), 1e-5)
    np.testing.assert_allclose(tr.pooled_H, expected.z_H[:, 1:].mean(1).numpy(), atol=1e-6)
    np.testing.assert_allclose(tr.pooled_L[:, -1], expected.z_L[:, 1:].mean(1).numpy(), atol=1e-6)


def test_cycle_traces_can_run_more_low_level_steps(tiny):
    x = tiny.embed(torch.from_numpy(puzzles(2).astype(np.int64))).detach()
    _, tr = cycle_traces(tiny, tiny.initial_carry(2), x, l_steps=5)
    assert tr.res_L.shape == (2, 5) and (tr.res_L > 0).all()
    with pytest.raises(ValueError, match="l_steps"):
        cycle_traces(tiny, tiny.initial_carry(2), x, l_steps=0)


def test_trace_episodes_shapes_and_agreement_with_the_model(tiny):
    n, C = 5, 3
    T = tiny.config.l_cycles
    inputs = puzzles(n, seed=2)
    tr = trace_episodes(tiny, inputs, cycles=C, batch_size=2)  # batches 2 + 2 + 1
    assert tr.res_H.shape == tr.abs_H.shape == tr.q_halt.shape == (n, C)
    assert tr.res_L.shape == tr.abs_L.shape == (n, C, T)
    assert tr.predictions.shape == tr.confidence.shape == (n, C, 81)
    assert tr.pooled_H.shape == (n, C + 1, 32) and tr.pooled_L.shape == (n, C * T + 1, 32)
    assert tr.cov_cells_H.shape == (32, 32)
    assert (tr.res_L > 0).all() and (tr.res_H > 0).all()  # the recurrence does move
    assert (tr.n_cycles, tr.l_steps) == (C, T)
    # Same as running the model's own cycle C times, batch or not.
    with torch.no_grad():
        x = tiny.embed(torch.from_numpy(inputs.astype(np.int64)))
        carry = tiny.initial_carry(n)
        np.testing.assert_allclose(tr.pooled_H[:, 0], carry.z_H[:, 1:].mean(1).numpy())
        for _ in range(C):
            carry = tiny.cycle(carry, x)
        out = tiny.readout(carry)
    np.testing.assert_allclose(tr.pooled_H[:, -1], carry.z_H[:, 1:].mean(1).numpy(), atol=1e-5)
    np.testing.assert_allclose(tr.q_continue[:, -1], out.q_continue.numpy(), atol=1e-5)
    np.testing.assert_array_equal(tr.predictions[:, -1], out.logits.argmax(-1).numpy())
    # The per-cell covariance is the covariance of every cell's final z_H.
    cells = carry.z_H[:, 1:].reshape(-1, 32).double().numpy()
    np.testing.assert_allclose(tr.cov_cells_H, np.cov(cells, rowvar=False), atol=1e-8)


def test_trace_episodes_rejects_puzzles_of_the_wrong_size(tiny):
    with pytest.raises(ValueError, match="shape"):
        trace_episodes(tiny, np.zeros((2, 16), np.uint8))
    with pytest.raises(ValueError, match=">= 1"):
        trace_episodes(tiny, puzzles(2), cycles=0)


def test_panel_values_map_residuals_on_a_log_scale(tiny):
    x = tiny.embed(torch.from_numpy(puzzles(2).astype(np.int64))).detach()
    _, tr = cycle_traces(tiny, tiny.initial_carry(2), x)
    v = panel_values(tr, row=1)
    assert set(v) == {"res z_H", "res z_L"} and all(0.0 <= a <= 1.0 for a in v.values())
    fake = tr._replace(res_H=np.array([1e-2, 1e-4]), res_L=np.array([[5.0, 1.0], [0.0, 1e-6]]))
    assert panel_values(fake, row=0) == {"res z_H": pytest.approx(0.5), "res z_L": 1.0}
    assert panel_values(fake, row=1) == {"res z_H": 0.0, "res z_L": 0.0}
    assert panel_values(fake, row=0, floor=1e-2)["res z_H"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="floor"):
        panel_values(tr, floor=1.0)


def test_strip_puzzle_choice():
    correct = np.array(
        [[False, False, True], [False, True, True], [False, False, False], [True, True, True]]
    )
    preds = np.zeros((4, 3, 2), np.uint8)
    assert analysis._choose_strip_puzzle(correct, preds) == 0  # solved latest (cycle 3)
    preds[2, 1, 0] = 1  # most revised when none is solved
    assert analysis._choose_strip_puzzle(np.zeros_like(correct), preds) == 2


# ---------------------------------------------------------------------------- figures and command
@pytest.mark.parametrize(
    "task, config", [("sudoku", {}), ("maze", {"vocab_size": 6, "seq_len": 900})]
)
def test_answer_strip_draws_every_cycle_with_the_viewers_painter(monkeypatch, task, config):
    from hrm_env.puzzles.tasks import get_task
    from hrm_env.render import maze as maze_painter
    from hrm_env.render import sudoku as sudoku_painter

    painter = maze_painter if task == "maze" else sudoku_painter
    seen = []
    real = painter.draw_board

    def spy(pygame, surface, rect, snap, options, fonts):
        seen.append((rect.size, snap))
        real(pygame, surface, rect, snap, options, fonts)

    monkeypatch.setattr(painter, "draw_board", spy)
    spec = get_task(task)
    bank = spec.test_set()[:1]
    C = 5
    rng = np.random.default_rng(0)
    preds = np.repeat(bank.inputs, C, axis=0)
    preds[-1] = bank.targets[0]
    preds[1, np.flatnonzero(bank.inputs[0] == (0 if task != "maze" else 2))[:3]] = 5  # changes
    conf = rng.random((C, spec.seq_len)).astype(np.float32)
    correct = np.array([False] * (C - 1) + [True])
    image = analysis.answers_strip(
        task,
        spec.grid_shape,
        bank.inputs[0],
        bank.targets[0],
        preds,
        conf,
        correct,
        board=100,
        columns=3,
        title="t",
    )
    assert len(seen) == C and all(size == (100, 100) for size, _ in seen)
    assert [s.cycle for _, s in seen] == list(range(1, C + 1))
    np.testing.assert_array_equal(seen[-1][1].prediction, bank.targets[0])
    assert seen[0][1].previous is None
    np.testing.assert_array_equal(seen[2][1].previous, preds[1])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[1] == 3 * 100 + 4 * 10  # three columns of boards with gaps
    assert image.shape[0] > 2 * 100  # two rows
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 5  # boards drawn, not blank


def test_analyze_command_writes_every_figure_and_the_numbers(tmp_path, tiny, capsys):
    stem = tmp_path / "ckpt" / "tiny"
    save_checkpoint(stem, tiny, meta={"task": "sudoku"})
    out = tmp_path / "figs"
    argv = [
        "analyze",
        "sudoku",
        "--checkpoint",
        str(stem),
        "--out",
        str(out),
        "--n",
        "6",
        "--cycles",
        "3",
        "--random-baseline",
        "--pca-puzzles",
        "2",
        "--seed",
        "1",
    ]
    assert main(argv) == 0
    for name in (*FIGURES, "analysis.json", "residuals.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    from matplotlib.image import imread

    for name in FIGURES:
        img = imread(out / name)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
        assert img.std() > 0  # something was drawn

    T = tiny.config.l_cycles
    summary = json.loads((out / "analysis.json").read_text())
    assert summary["n"] == 6 and summary["cycles"] == 3 and summary["l_steps"] == T
    assert len(summary["res_L"]) == 3 * T and len(summary["res_H"]) == 3
    assert all(r > 0 for r in summary["res_L"])
    assert len(summary["exact_accuracy"]) == 3 and len(summary["q_halt"]) == 3
    pr = summary["participation_ratio"]
    assert set(pr) == {"trained", "random init"}
    for model in pr.values():
        assert 1.0 <= model["pr_H"] <= 5.0 + 1e-9  # at most n - 1 for 6 pooled samples
        assert 1.0 <= model["pr_cells_L"] <= 32.0 + 1e-9
    assert len(summary["random_init"]["res_L"]) == 3 * T
    rows = (out / "residuals.csv").read_text().strip().splitlines()
    assert rows[0].startswith("step,cycle,l_step,res_L,res_H")
    assert len(rows) == 1 + 3 * T
    # The JSON mean residuals are those the tracer measures on the same puzzles.
    from hrm_env.puzzles.tasks import get_task

    inputs = get_task("sudoku").test_set().inputs[summary["test_indices"]]
    trace = trace_episodes(tiny, inputs, cycles=3)
    np.testing.assert_allclose(summary["res_H"], trace.res_H.mean(0), rtol=1e-5)
    assert "PR(z_H)" in capsys.readouterr().out


def test_analyze_command_reports_bad_arguments(tmp_path, tiny, capsys):
    stem = tmp_path / "tiny"
    save_checkpoint(stem, tiny, meta={"task": "sudoku"})
    base = ["analyze", "sudoku", "--checkpoint", str(stem), "--out", str(tmp_path / "o")]
    assert main([*base, "--n", "1"]) == 2
    assert "--n must be >= 2" in capsys.readouterr().err
    assert main([*base, "--n", "4", "--puzzle", "4"]) == 2
    assert "--puzzle must lie in [0, 4)" in capsys.readouterr().err
    assert (
        main(
            [
                "analyze",
                "sudoku",
                "--checkpoint",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
