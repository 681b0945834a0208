"""How far the trainer's logged accuracy runs above held-out accuracy, and why.

The trainer logs accuracy on the puzzles that halt at each step. Under deep supervision every
puzzle stays in the batch for several segments and the optimizer steps once per segment, so by
the time a puzzle halts the weights have been fitted to it (and to its batch mates) several
times. This script continues training a checkpoint from its own weights for a few steps at
each given learning rate and prints, side by side, the logged figure and the same weights'
accuracy on fresh puzzles. At a learning rate of ~0 the two agree (the trainer's metric itself
is exact: tests/agent/test_train.py checks it puzzle by puzzle); the gap at the training rate
is the in-flight fitting.

python scripts/train_metric_bias.py [--checkpoint sudoku] [--steps 96] [--lr 3e-3 1e-12]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from hrm_agent.checkpoint import load_checkpoint
from hrm_agent.evaluate import evaluate
from hrm_agent.reasoner import shipped_checkpoint
from hrm_agent.train import TrainConfig, Trainer
from hrm_env.puzzles.tasks import TASK_NAMES


def run(stem: str, lr: float, steps: int, skip: int, fresh_n: int, seed: int) -> dict:
    model, _, meta = load_checkpoint(stem)
    recipe = dict(meta["train_config"])
    recipe.update(
        lr=lr,
        lr_warmup_steps=0,
        lr_schedule="constant",
        steps=steps,
        eval_every=0,
        checkpoint_every=0,
        progress=False,
        seed=seed,
        out_dir=tempfile.mkdtemp(prefix="hrm-metric-bias-"),
    )
    trainer = Trainer(TrainConfig.from_dict(recipe))
    trainer.model.load_state_dict(model.state_dict())
    halted = logged = 0.0
    tick = time.perf_counter()
    for step in range(steps):
        metrics = trainer.train_step()
        if step >= skip:  # the first batch has not been through a whole episode yet
            halted += metrics["halted"]
            logged += metrics["accuracy"]
    seconds = time.perf_counter() - tick
    difficulty = recipe.get("difficulty")
    fresh = trainer.task.sample(np.random.default_rng(seed + 1), fresh_n, difficulty)
    result = evaluate(trainer.model, trainer.task, fresh)
    return {
        "lr": lr,
        "halted": int(halted),
        "logged": logged / max(halted, 1.0),
        "fresh": float(result.cell_per_cycle[-1]),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--checkpoint", default="sudoku", help="shipped task name or a checkpoint path stem"
    )
    parser.add_argument("--steps", type=int, default=96)
    parser.add_argument("--skip", type=int, default=16, help="steps not counted at the start")
    parser.add_argument("--lr", type=float, nargs="+", default=[3e-3, 1e-12])
    parser.add_argument("--fresh", type=int, default=256, help="fresh puzzles to evaluate")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shipped = args.checkpoint in TASK_NAMES
    stem = str(shipped_checkpoint(args.checkpoint)) if shipped else args.checkpoint
    print(f"checkpoint {stem}, {args.steps} steps from its weights, first {args.skip} not counted")
    print("| lr | halted puzzles | logged cell acc. (halted rows) | fresh cell acc. | seconds |")
    print("|---|---|---|---|---|")
    for lr in args.lr:
        r = run(stem, lr, args.steps, args.skip, args.fresh, args.seed)
        print(
            f"| {r['lr']:g} | {r['halted']} | {r['logged']:.3f} | {r['fresh']:.3f} "
            f"| {r['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
