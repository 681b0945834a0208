"""Losses: stablemax against its formula, cross-entropies, Q targets, hrm_loss by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hrm_agent.losses import (
    delayed_q_continue_loss,
    hrm_loss,
    log_stablemax,
    q_targets,
    softmax_cross_entropy,
    stablemax,
    stablemax_cross_entropy,
)
from hrm_agent.model import Outputs


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def bce(logit: float, target: float) -> float:
    p = sigmoid(logit)
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_stablemax_matches_its_formula():
    x = torch.tensor([-3.0, -0.5, 0.0, 0.5, 2.0])
    expected = torch.tensor([1 / 4, 1 / 1.5, 1.0, 1.5, 3.0])
    torch.testing.assert_close(stablemax(x), expected)
    logp = log_stablemax(x)
    assert logp.dtype == torch.float64
    total = 0.25 + 1 / 1.5 + 1.0 + 1.5 + 3.0
    torch.testing.assert_close(logp, torch.log(expected.double() / total))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=2, max_size=12)
)
def test_log_stablemax_is_a_normalised_increasing_log_distribution(values):
    x = torch.tensor(values, dtype=torch.float32)
    logp = log_stablemax(x)
    assert torch.isfinite(logp).all()
    torch.testing.assert_close(logp.exp().sum(), torch.tensor(1.0, dtype=torch.float64))
    order = torch.argsort(x)
    assert (logp[order].diff() >= -1e-12).all()


def test_stablemax_gradient_is_finite_for_extreme_logits():
    x = torch.tensor([[-1e30, 0.0, 1e30, -5.0]], requires_grad=True)
    loss = stablemax_cross_entropy(x, torch.tensor([1]))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(x.grad).all()


def test_cross_entropies_by_hand_with_a_mask():
    logits = torch.tensor([[[2.0, -1.0, 0.0], [0.0, 0.0, 1.0]]])  # (1, 2, 3)
    labels = torch.tensor([[0, 7]])  # 7 is junk, allowed only because the cell is masked
    mask = torch.tensor([[True, False]])
    sm = stablemax_cross_entropy(logits, labels, mask)
    s = [3.0, 0.5, 1.0]
    assert sm.dtype == torch.float32 and sm.shape == (1, 2)
    torch.testing.assert_close(sm, torch.tensor([[-math.log(3.0 / sum(s)), 0.0]]))
    soft = softmax_cross_entropy(logits, labels, mask)
    torch.testing.assert_close(
        soft[0, 0], F.cross_entropy(logits[0, :1], torch.tensor([0])).squeeze()
    )
    assert soft[0, 1] == 0
    unmasked = softmax_cross_entropy(logits, torch.tensor([[0, 2]]))
    torch.testing.assert_close(
        unmasked, F.cross_entropy(logits[0], torch.tensor([0, 2]), reduction="none")[None]
    )


def test_cross_entropy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="labels shape"):
        stablemax_cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="mask shape"):
        softmax_cross_entropy(
            torch.zeros(2, 3, 4),
            torch.zeros(2, 3, dtype=torch.long),
            torch.ones(2, 2, dtype=torch.bool),
        )


def test_q_targets_hand_example():
    next_halt = torch.tensor([0.0, 2.0, -1.0, 3.0])
    next_continue = torch.tensor([1.0, -3.0, 5.0, 4.0])
    is_last = torch.tensor([False, False, True, True])
    got = q_targets(next_halt, next_continue, is_last)
    want = torch.tensor([sigmoid(1.0), sigmoid(2.0), sigmoid(-1.0), sigmoid(3.0)])
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(
        q_targets(next_halt, next_continue, False)[2], torch.tensor(sigmoid(5.0))
    )
    nh = next_halt.clone().requires_grad_(True)
    assert not q_targets(nh, next_continue, is_last).requires_grad
    with pytest.raises(ValueError, match="is_last"):
        q_targets(next_halt, next_continue, torch.tensor([True, False]))
    with pytest.raises(ValueError, match="next_q_halt"):
        q_targets(next_halt[:2], next_continue, is_last)


def test_q_targets_step_cost_is_taken_off_continuing_and_floored_at_zero():
    next_halt = torch.tensor([4.0, -6.0, 0.0])
    next_continue = torch.tensor([1.0, -7.0, 0.0])
    plain = q_targets(next_halt, next_continue, False)
    costly = q_targets(next_halt, next_continue, False, step_cost=0.01)
    torch.testing.assert_close(costly[:1], plain[:1] - 0.01)
    assert costly[1] == 0.0  # sigmoid(-6) < 0.01: floored, never negative
    # A solved puzzle: halting (target 1) now beats continuing, which it only tied before.
    assert q_targets(torch.tensor([30.0]), torch.tensor([30.0]), False, 0.01) < 1 - 0.009
    with pytest.raises(ValueError, match="step_cost"):
        q_targets(next_halt, next_continue, False, step_cost=-0.1)


def _example():
    # Two samples, three cells, vocabulary 3. Sample 0 is fully right, sample 1 has one error.
    logits = torch.tensor(
        [
            [[3.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]],
            [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 4.0]],
        ],
        requires_grad=True,
    )
    labels = torch.tensor([[0, 1, 2], [0, 1, 2]])
    outputs = Outputs(logits, torch.tensor([1.0, 0.5]), torch.tensor([-1.0, 2.0]))
    return logits, labels, outputs


def test_hrm_loss_hand_example_softmax():
    logits, labels, outputs = _example()
    target = torch.tensor([0.25, 0.75])
    parts = hrm_loss(outputs, labels, q_continue_target=target, loss="softmax")

    def ce(row, label):
        return -(row[label] - math.log(sum(math.exp(v) for v in row)))

    rows = logits.detach().tolist()
    lm0 = sum(ce(r, lab) for r, lab in zip(rows[0], [0, 1, 2], strict=True)) / 3
    lm1 = sum(ce(r, lab) for r, lab in zip(rows[1], [0, 1, 2], strict=True)) / 3
    lm = (lm0 + lm1) / 2
    q_halt = (bce(1.0, 1.0) + bce(0.5, 0.0)) / 2
    q_cont = (bce(-1.0, 0.25) + bce(2.0, 0.75)) / 2
    assert parts.seq_correct.tolist() == [True, False]
    assert parts.lm.item() == pytest.approx(lm, rel=1e-5)
    assert parts.q_halt.item() == pytest.approx(q_halt, rel=1e-5)
    assert parts.q_continue.item() == pytest.approx(q_cont, rel=1e-5)
    assert parts.total.item() == pytest.approx(lm + 0.5 * (q_halt + q_cont), rel=1e-5)
    assert parts.exact_accuracy.item() == pytest.approx(0.5)
    assert parts.cell_accuracy.item() == pytest.approx((1 + 2 / 3) / 2)
    # q_halt >= 0 says "correct" for both; right for sample 0 only.
    assert parts.q_halt_accuracy.item() == pytest.approx(0.5)
    parts.total.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_hrm_loss_mask_reductions_and_missing_target():
    logits, labels, outputs = _example()
    mask = torch.tensor([[True, True, True], [True, False, True]])  # hide sample 1's error
    parts = hrm_loss(outputs, labels, mask=mask)
    assert parts.seq_correct.tolist() == [True, True]
    assert parts.q_continue.item() == 0.0  # no target: no q_continue term
    per = hrm_loss(outputs, labels, mask=mask, reduction="none")
    summed = hrm_loss(outputs, labels, mask=mask, reduction="sum")
    assert per.lm.shape == (2,)
    torch.testing.assert_close(per.lm.mean(), parts.lm)
    torch.testing.assert_close(per.total.sum(), summed.total)
    # Stablemax lm of sample 1 over its two supervised cells, by the formula:
    # s([1, 0, 0]) = [2, 1, 1] (label 0), s([0, 0, 4]) = [1, 1, 5] (label 2).
    lm1 = -(math.log(2.0 / 4.0) + math.log(5.0 / 7.0)) / 2
    assert per.lm[1].item() == pytest.approx(lm1, rel=1e-6)


def test_hrm_loss_rejects_bad_arguments():
    _, labels, outputs = _example()
    with pytest.raises(ValueError, match="loss must be"):
        hrm_loss(outputs, labels, loss="hinge")
    with pytest.raises(ValueError, match="reduction"):
        hrm_loss(outputs, labels, reduction="max")
    with pytest.raises(ValueError, match="q_continue_target"):
        hrm_loss(outputs, labels, q_continue_target=torch.zeros(3))


def test_segment_weights_grow_linearly_and_average_to_one():
    from hrm_agent.losses import segment_weights

    M = 8
    seg = torch.arange(1, M + 1)
    w = segment_weights(seg, M, "linear")
    assert torch.all(w[1:] > w[:-1])
    torch.testing.assert_close(w.mean(), torch.tensor(1.0))
    assert torch.equal(segment_weights(seg, M, "uniform"), torch.ones(M))
    with pytest.raises(ValueError, match="segment weighting"):
        segment_weights(seg, M, "cubic")


def test_lm_weight_scales_each_sample_cell_loss_only():
    from hrm_agent.losses import hrm_loss
    from hrm_agent.model import Outputs

    g = torch.Generator().manual_seed(0)
    out = Outputs(
        torch.randn(3, 5, 4, generator=g), torch.randn(3, generator=g), torch.randn(3, generator=g)
    )
    labels = torch.randint(0, 4, (3, 5), generator=g)
    plain = hrm_loss(out, labels, reduction="none")
    w = torch.tensor([0.5, 1.0, 2.0])
    weighted = hrm_loss(out, labels, reduction="none", lm_weight=w)
    torch.testing.assert_close(weighted.lm, plain.lm * w)
    torch.testing.assert_close(weighted.q_halt, plain.q_halt)
    assert torch.equal(weighted.seq_correct, plain.seq_correct)


def test_aux_loss_averages_over_labelled_cells_only():
    from hrm_agent.losses import aux_loss

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 6, 4, generator=g)
    labels = torch.tensor([[0, 1, 2, 3, -1, -1], [-1] * 6])
    loss = aux_loss(logits, labels)
    expected = F.cross_entropy(logits[0, :4], labels[0, :4])
    torch.testing.assert_close(loss[0], expected)
    assert loss[1] == 0  # a sample with no labelled cell adds nothing
    with pytest.raises(ValueError, match="labels shape"):
        aux_loss(logits, labels[:, :3])


def test_delayed_q_continue_loss_fits_the_next_steps_best_value_on_valid_rows():
    then = torch.tensor([0.3, -1.0, 2.0], requires_grad=True)
    valid = torch.tensor([True, False, True])
    q_halt, q_continue = torch.tensor([1.0, 5.0, -2.0]), torch.tensor([-1.0, 0.0, 0.5])
    loss = delayed_q_continue_loss(then, valid, q_halt, q_continue)
    target = torch.sigmoid(torch.maximum(q_halt, q_continue))  # never the last segment
    expected = F.binary_cross_entropy_with_logits(then, target, reduction="none")
    assert torch.allclose(loss[valid], expected[valid]) and loss[1] == 0.0
    loss.sum().backward()
    assert then.grad[1] == 0.0 and then.grad[0] != 0.0  # no gradient through invalid rows
    charged = delayed_q_continue_loss(then, valid, q_halt, q_continue, step_cost=0.5)
    target = (target - 0.5).clamp_min(0.0)  # continuing costs what the halting env charges
    expected = F.binary_cross_entropy_with_logits(then, target, reduction="none")
    assert torch.allclose(charged[valid], expected[valid]) and charged[1] == 0.0
