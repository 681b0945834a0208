"""Live residual traces (issue 8) in the viewer's side panel via ``hrm watch``."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hrm_agent.analysis import TracingReasoner  # noqa: E402
from hrm_env.render.watch import watch  # noqa: E402


def test_tracing_reasoner_computes_the_same_cycles(tiny_reasoner):
    base = tiny_reasoner("sudoku-mini")
    tracer = TracingReasoner.wrap(base)
    inputs = np.zeros((3, 16), dtype=np.uint8)
    inputs[:, 0] = [1, 2, 3]
    a, b = base.reset(inputs), tracer.reset(inputs)
    assert tracer.panel_values() == {}
    for _ in range(3):
        a, out_a = base.cycle(a)
        b, out_b = tracer.cycle(b)
        np.testing.assert_allclose(out_a.logits, out_b.logits, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out_a.q, out_b.q, rtol=1e-5, atol=1e-6)
    values = tracer.panel_values(row=1)
    assert set(values) == {"res z_H", "res z_L"}
    assert all(0.0 <= v <= 1.0 for v in values.values())


def _frames(path):
    from PIL import Image

    with Image.open(path) as gif:
        frames = []
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB")))
    return frames


def test_watch_draws_residual_traces_when_asked(tmp_path, tiny_reasoner):
    plain, traced = tmp_path / "plain.gif", tmp_path / "traced.gif"
    for path, residuals in ((plain, False), (traced, True)):
        code = watch(
            "sudoku-mini",
            seed=0,
            save=path,
            episodes=1,
            fps=10,
            reasoner=tiny_reasoner("sudoku-mini"),
            max_cycles=4,
            residuals=residuals,
        )
        assert code == 0
    a, b = _frames(plain), _frames(traced)
    assert len(a) == len(b)
    # Same puzzle, same model: the board is identical, only the side panel's traces differ.
    assert any(not np.array_equal(x, y) for x, y in zip(a[1:], b[1:], strict=True))
