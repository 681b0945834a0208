"""evaluate(): per-cycle accuracy and Q halting on a scripted model; solve(); the eval table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hrm_agent.config import HRMConfig
from hrm_agent.evaluate import evaluate, format_table, iterate_cycles
from hrm_agent.model import HRM, Outputs
from hrm_env.puzzles.tasks import PuzzleBatch, Task

TARGET = (1, 2)  # every scripted puzzle has this 2-cell answer


class ExactTask(Task):
    """A 2-cell task scored like Sudoku: correct = equal to the reference, every cell scored."""

    name = "scripted"
    seq_len = 2
    vocab_size = 10
    grid_shape = (1, 2)

    def is_correct(self, inputs, predictions, targets):
        return np.all(predictions == targets, axis=-1)


class ScriptedModel(nn.Module):
    """A stand-in HRM whose readout after cycle c is fixed by the puzzle tokens (k, h):

    * cell 0 is right from cycle k - 1 on, cell 1 from cycle k on (0 elsewhere);
    * q_halt > q_continue from cycle h on (h = 0: never).
    """

    def __init__(self, h_cycles: int = 2, max_segments: int = 3) -> None:
        super().__init__()
        self.config = HRMConfig.preset(
            "tiny", seq_len=2, h_cycles=h_cycles, max_segments=max_segments
        )
        self.dummy = nn.Parameter(torch.zeros(1))  # gives the stub a device

    def initial_carry(self, batch_size, device=None):
        return torch.zeros(batch_size, device=device)  # cycles run so far

    def embed(self, tokens):
        self._tokens = tokens  # the real HRM keeps the puzzle in x; the stub reads it here
        return tokens

    def cycle(self, carry, x, tokens=None):
        return carry + 1

    def readout(self, carry, tokens=None):
        c = carry  # (B,)
        k, h = self._tokens[:, 0].float(), self._tokens[:, 1].float()
        right = torch.stack([c >= k - 1, c >= k], dim=1)  # (B, 2)
        target = torch.tensor(TARGET).expand_as(right)
        preds = torch.where(right, target, 0)
        logits = nn.functional.one_hot(preds, 10).float()  # (B, 2, 10)
        halt = (h > 0) & (c >= h)
        q_halt = torch.where(halt, 1.0, -1.0)
        return Outputs(logits, q_halt, torch.zeros_like(q_halt))


# (k, h) per puzzle: A solves at cycle 3 and the Q head halts from cycle 4; B solves at 5 and
# never halts by Q; C solves at 4 but the Q head halts (too early) at cycle 2.
PUZZLES = np.array([[3, 4], [5, 0], [4, 2]], dtype=np.uint8)


def scripted_batch() -> PuzzleBatch:
    targets = np.tile(np.array(TARGET, dtype=np.uint8), (len(PUZZLES), 1))
    return PuzzleBatch(PUZZLES.copy(), targets, np.zeros(len(PUZZLES), dtype=np.int32))


@pytest.mark.parametrize("batch_size", [3, 2, 1, None])
def test_accuracy_after_each_cycle_and_q_halting_match_hand_computation(batch_size):
    result = evaluate(ScriptedModel(), ExactTask(), scripted_batch(), batch_size=batch_size)
    # Cycle by cycle (N = 2, 3 segments = 6 cycles), worked out from the (k, h) table above.
    np.testing.assert_allclose(result.exact_per_cycle, [0, 0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(result.cell_per_cycle, [0, 1 / 6, 1 / 2, 5 / 6, 1, 1])
    assert result.exact_accuracy == 1.0 and result.cell_accuracy == 1.0
    assert result.max_cycles == 6 and result.cycles_per_segment == 2 and result.n == 3
    # Q halting only at segment ends (cycles 2, 4, 6): A at 4 (right), B at the limit 6
    # (right), C at 2 (nothing right yet).
    assert result.halt_cycles.tolist() == [4, 6, 2]
    assert result.q_mean_cycles == pytest.approx(4.0)
    assert result.q_exact_accuracy == pytest.approx(2 / 3)
    assert result.q_cell_accuracy == pytest.approx(2 / 3)
    assert result.q_predictions.tolist() == [[1, 2], [1, 2], [0, 0]]
    assert result.predictions.tolist() == [[1, 2]] * 3


def test_fewer_segments_cut_the_curve_and_force_the_halt():
    result = evaluate(ScriptedModel(), ExactTask(), scripted_batch(), max_segments=2)
    np.testing.assert_allclose(result.exact_per_cycle, [0, 0, 1 / 3, 2 / 3])
    assert result.halt_cycles.tolist() == [4, 4, 2]  # B never halts by Q: stops at the limit
    assert result.exact_accuracy == pytest.approx(2 / 3)


def test_halting_happens_only_at_segment_ends_with_n_3():
    # With N = 3 the segment ends are cycles 3 and 6: C's Q head says halt from cycle 2 but
    # can only act at 3, where cell 0 is right (k - 1 = 3).
    model = ScriptedModel(h_cycles=3, max_segments=2)
    result = evaluate(model, ExactTask(), scripted_batch())
    assert result.halt_cycles.tolist() == [6, 6, 3]
    assert result.q_cell_accuracy == pytest.approx((1 + 1 + 0.5) / 3)


def test_json_summary_has_the_documented_keys():
    result = evaluate(ScriptedModel(), ExactTask(), scripted_batch())
    summary = result.to_json("q")
    for key in (
        "task",
        "n",
        "exact_accuracy",
        "cell_accuracy",
        "mean_cycles",
        "seconds",
        "accuracy_per_cycle",
        "q_halting",
        "max",
    ):
        assert key in summary
    assert summary["mean_cycles"] == pytest.approx(4.0)  # halt="q": headline is the Q halt
    assert result.to_json("max")["mean_cycles"] == 6.0
    assert len(summary["accuracy_per_cycle"]) == 6
    with pytest.raises(ValueError, match="halt"):
        result.to_json("sometimes")
    table = format_table(result, summary)
    assert "Q head" in table and "max cycles" in table


def test_untrained_hrm_never_halts_by_q_and_curve_matches_segments():
    # A fresh HRM has a zero Q-head weight and equal biases: q_halt == q_continue, so Q
    # halting never fires and every puzzle runs to the limit.
    config = HRMConfig.preset("tiny", seq_len=2, max_segments=2)
    model = HRM(config, generator=torch.Generator().manual_seed(0))
    result = evaluate(model, ExactTask(), scripted_batch())
    assert result.q_mean_cycles == result.max_cycles == 4
    # The per-cycle readout agrees with running whole segments (model.forward).
    tokens = torch.from_numpy(PUZZLES.astype(np.int64))
    with torch.no_grad():
        carry = model.initial_carry(3)
        carry, _ = model(carry, tokens)
        carry, out = model(carry, tokens)
    last = list(iterate_cycles(model, tokens))[-1]
    assert torch.equal(last.predictions, out.logits.argmax(-1))
    assert model.training  # evaluate restores the mode it found


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(ScriptedModel(), ExactTask(), scripted_batch(), batch_size=0)
    model = HRM(HRMConfig.preset("tiny"), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="cells"):
        evaluate(model, ExactTask(), scripted_batch())  # 81-cell model, 2-cell puzzles


# ---------------------------------------------------------------------- solve()
@pytest.fixture
def mini_checkpoint(tmp_path):
    from hrm_agent.checkpoint import save_checkpoint

    config = HRMConfig.preset("tiny", seq_len=16, h_cycles=1, max_segments=4)
    model = HRM(config, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        # A Q head that halts about half of the test puzzles at the first cycle: random
        # weights, then the halt bias shifted by the median first-cycle margin.
        model.q_head.weight.normal_(0.0, 2.0, generator=torch.Generator().manual_seed(1))
        tokens = torch.from_numpy(mini_puzzles(12).inputs.astype(np.int64))
        out = model.readout(model.cycle(model.initial_carry(12), model.embed(tokens)))
        model.q_head.bias[0] -= (out.q_halt - out.q_continue).median() + 1e-4
    stem = tmp_path / "mini"
    save_checkpoint(stem, model, meta={"task": "sudoku-mini"})
    return stem


def mini_puzzles(n: int) -> PuzzleBatch:
    from hrm_env.puzzles.tasks import get_task

    return get_task("sudoku-mini").sample(np.random.default_rng(5), n, "medium")


@pytest.mark.parametrize("halt", ["q", "max"])
def test_solve_returns_what_evaluate_reads_out(mini_checkpoint, halt):
    from hrm_agent.api import solve
    from hrm_agent.evaluate import load_model
    from hrm_env.puzzles import sudoku

    batch = mini_puzzles(12)
    model, _ = load_model("sudoku-mini", mini_checkpoint)
    reference = evaluate(model, "sudoku-mini", batch)
    assert len(np.unique(reference.halt_cycles)) > 1  # puzzles halt at different cycles
    assert not np.array_equal(reference.q_predictions, reference.predictions)
    expected = reference.q_predictions if halt == "q" else reference.predictions

    answers = solve(batch.inputs, task="sudoku-mini", checkpoint=mini_checkpoint, halt=halt)
    assert answers.shape == (12, 16) and answers.dtype == np.uint8
    np.testing.assert_array_equal(answers, expected)
    # Strings, single grids and small batches give the same answers.
    strings = [sudoku.format(q) for q in batch.inputs[:3]]
    as_strings = solve(
        strings, task="sudoku-mini", checkpoint=mini_checkpoint, halt=halt, batch_size=2
    )
    np.testing.assert_array_equal(as_strings, expected[:3])
    one = solve(strings[0], task="sudoku-mini", checkpoint=mini_checkpoint, halt=halt)
    assert one.shape == (16,)
    np.testing.assert_array_equal(one, expected[0])
    grid = solve(
        batch.inputs[1].reshape(4, 4), task="sudoku-mini", checkpoint=mini_checkpoint, halt=halt
    )
    np.testing.assert_array_equal(grid, expected[1])


def test_solve_rejects_bad_input_with_clear_errors(mini_checkpoint):
    from hrm_agent.api import solve
    from hrm_env.puzzles import sudoku

    kw = dict(task="sudoku-mini", checkpoint=mini_checkpoint)
    good = sudoku.format(mini_puzzles(1).inputs[0])
    with pytest.raises(ValueError, match="puzzle 1"):
        solve([good, "11.............."], **kw)  # clashing givens in puzzle 1
    with pytest.raises(ValueError, match="shape"):
        solve(np.zeros((2, 15), dtype=np.uint8), **kw)
    with pytest.raises(ValueError, match="halt"):
        solve("1...............", halt="never", **kw)
    with pytest.raises(ValueError, match="trained for task"):
        solve("." * 81, task="sudoku", checkpoint=mini_checkpoint)
    with pytest.raises(ValueError, match="unknown task"):
        solve("1...............", task="go", checkpoint=mini_checkpoint)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            solve(good, batch_size=bad, **kw)


def test_eval_and_solve_run_with_the_threads_asked_for(mini_checkpoint, capsys):
    from hrm_agent import cli, devices
    from hrm_agent.api import solve

    before = torch.get_num_threads()
    default = devices.DEFAULT_INFERENCE_THREADS or devices._TORCH_DEFAULT_THREADS
    try:
        args = ["eval", "sudoku-mini", "--checkpoint", str(mini_checkpoint), "--limit", "2"]
        assert cli.main([*args, "--threads", "-1"]) == 2
        assert "--threads must be an integer >= 1" in capsys.readouterr().err
        torch.set_num_threads(default + 1)
        assert cli.main([*args, "--threads", "1", "--json"]) == 0
        assert torch.get_num_threads() == 1
        torch.set_num_threads(default + 1)
        solve(mini_puzzles(2).inputs, task="sudoku-mini", checkpoint=mini_checkpoint)
        assert torch.get_num_threads() == default
        with pytest.raises(ValueError, match="threads must be"):
            solve(mini_puzzles(2).inputs, task="sudoku-mini", threads=-2)
    finally:
        torch.set_num_threads(before)
