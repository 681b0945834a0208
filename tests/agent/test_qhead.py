"""Q-head fine-tuning: the targets by hand, learning a known rule, only q_head changes, saving."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from hrm_agent.checkpoint import load_checkpoint, save_checkpoint
from hrm_agent.config import HRMConfig
from hrm_agent.model import HRM
from hrm_agent.qhead import (
    Transitions,
    collect_transitions,
    finetune_checkpoint,
    finetune_q_head,
    head_q_values,
    q_head_loss,
    train_q_head,
)

TASK = "sudoku-mini"


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def bce(logit, target):
    p = sigmoid(logit)
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_q_head_loss_matches_a_hand_computation():
    # One puzzle, three cycles; correct from cycle 2 on.
    q = torch.tensor([[[-1.0, 0.5], [2.0, -1.0], [0.3, 4.0]]])
    correct = torch.tensor([[False, True, True]])
    parts = q_head_loss(q, correct)
    halt = (bce(-1.0, 0) + bce(2.0, 1) + bce(0.3, 1)) / 3
    # Cycle 1 continues into cycle 2: the best of its Q values; cycle 2 continues into the
    # last cycle, where the env halts by itself: only its q_halt; cycle 3 cannot continue.
    cont = (bce(0.5, sigmoid(max(2.0, -1.0))) + bce(-1.0, sigmoid(0.3))) / 2
    assert float(parts.halt) == pytest.approx(halt, rel=1e-5)
    assert float(parts.continue_) == pytest.approx(cont, rel=1e-5)
    assert float(parts.total) == pytest.approx(0.5 * (halt + cont), rel=1e-5)
    assert float(parts.halt_accuracy) == pytest.approx(1.0)  # signs: -, +, + vs F, T, T


def test_q_head_loss_with_one_cycle_has_no_continue_term():
    parts = q_head_loss(torch.tensor([[[1.0, 3.0]]]), torch.tensor([[True]]))
    assert float(parts.continue_) == 0.0
    assert float(parts.halt) == pytest.approx(bce(1.0, 1), rel=1e-5)


def test_q_head_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="q must be"):
        q_head_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="correct must be"):
        q_head_loss(torch.zeros(2, 3, 2), torch.zeros(2, 4, dtype=torch.bool))


def test_training_learns_when_the_answer_is_correct():
    # A known rule: the answer is correct exactly where feature 0 is positive.
    g = torch.Generator().manual_seed(0)
    features = torch.randn(256, 4, 8, generator=g).numpy()
    transitions = Transitions(features, features[..., 0] > 0, np.zeros((256, 4, 2), np.float32))
    head = nn.Linear(8, 2)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-5.0)  # the HRM's Q-head init
    losses = train_q_head(head, transitions, steps=300, batch_size=64, lr=3e-2, generator=g)
    assert np.mean(losses[-20:]) < 0.5 * losses[0]
    q = head_q_values(head, features)
    agree = (q[..., 0] > 0) == transitions.correct
    assert agree.mean() > 0.95


def test_a_step_cost_makes_the_head_halt_once_the_answer_stays_right():
    """Answers right from cycle 3 on, forever: with no cost, halting and continuing tie there
    and the fitted head may keep thinking; with the env's cost it halts."""
    g = torch.Generator().manual_seed(1)
    P, C, D = 128, 12, 6
    cycle = np.broadcast_to(np.arange(C, dtype=np.float32), (P, C))
    correct = cycle >= 3
    # The backbone's state tells "solved" (feature 0) and the cycle (feature 1).
    features = np.concatenate(
        [
            np.where(correct, 1.0, -1.0)[..., None],
            cycle[..., None] / C,
            torch.randn(P, C, D - 2, generator=g).numpy(),
        ],
        axis=-1,
    ).astype(np.float32)
    transitions = Transitions(features, correct, np.zeros((P, C, 2), np.float32))
    decisions = {}
    for cost in (0.0, 0.05):
        head = nn.Linear(D, 2)
        with torch.no_grad():
            head.weight.zero_()
            head.bias.copy_(torch.tensor([-5.0, 5.0]))  # a head that starts out never halting
        train_q_head(head, transitions, steps=600, batch_size=64, lr=3e-2, generator=g,
                     step_cost=cost)  # fmt: skip
        q = head_q_values(head, features)
        decisions[cost] = (q[..., 0] > q[..., 1])[correct].mean()
    assert decisions[0.05] > 0.9
    assert decisions[0.05] > decisions[0.0] + 0.2


@pytest.fixture(scope="module")
def tiny_model():
    torch.set_num_threads(1)
    config = HRMConfig.preset("tiny", seq_len=16, vocab_size=10)
    return HRM(config, generator=torch.Generator().manual_seed(0))


def test_finetuning_changes_only_the_q_head_and_lowers_its_loss(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    result = finetune_q_head(
        tiny_model, TASK, steps=40, n_puzzles=24, max_cycles=4, batch_size=8, lr=1e-2
    )
    for k, v in tiny_model.state_dict().items():  # the given model is left as it was
        assert torch.equal(v, before[k]), k
    tuned = result.model.state_dict()
    changed = {k for k in tuned if not torch.equal(tuned[k], before[k])}
    assert changed == {"q_head.weight", "q_head.bias"}
    assert result.after["loss"] < result.before["loss"]
    assert len(result.losses) == 40
    note = result.meta["q_head_finetune"]
    assert note["steps"] == 40 and note["puzzles"] == 24 and "frozen" in note["note"]
    # The recording replays the original head; with_q gives the tuned one's Q values.
    assert result.recording.features is not None
    q = head_q_values(result.model.q_head, result.recording.features)
    assert not np.allclose(q, result.recording.q)


def test_finetuning_from_a_recording_equals_running_the_model(tiny_model):
    from hrm_agent.reasoner import TorchReasoner
    from hrm_env.puzzles.tasks import get_task

    puzzles = get_task(TASK).test_set()[:12]
    _, recording = collect_transitions(TorchReasoner(tiny_model, TASK), puzzles, max_cycles=4)
    kwargs = {"steps": 10, "max_cycles": 3, "batch_size": 4, "lr": 1e-2, "seed": 1}
    a = finetune_q_head(tiny_model, TASK, puzzles=puzzles, **kwargs)
    b = finetune_q_head(tiny_model, TASK, recording=recording, **kwargs)  # 4 recorded, 3 used
    assert a.losses == pytest.approx(b.losses, rel=1e-5)
    other = HRM(tiny_model.config, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        other.q_head.weight.normal_()  # a different head gives other Q values
    with pytest.raises(ValueError, match="not made with this model"):
        finetune_q_head(other, TASK, recording=recording, **kwargs)


def test_finetune_checkpoint_saves_a_loadable_checkpoint_with_a_note(tiny_model, tmp_path):
    save_checkpoint(tmp_path / "base", tiny_model, meta={"task": TASK, "steps": 7})
    result = finetune_checkpoint(tmp_path / "base", tmp_path / "tuned", steps=5, n_puzzles=8,
                                 max_cycles=3, batch_size=4)  # fmt: skip
    model, _, meta = load_checkpoint(tmp_path / "tuned")
    assert meta["task"] == TASK and meta["steps"] == 7  # the base's meta is kept
    assert meta["q_head_finetune"]["base"].endswith("base")
    for k, v in model.state_dict().items():
        assert torch.equal(v, result.model.state_dict()[k].cpu()), k
