"""Refit a checkpoint's Q head on the halting env's transitions, over a mix of tiers.

``hrm_agent.qhead`` trains only the Q head, with the backbone frozen: on fresh training puzzles
(never the test sets) it records z_H at the prefix and the answer's correctness after every
cycle up to ``--max-cycles``, then fits q_halt to "right now" and q_continue to the best Q one
cycle later less ``--step-cost`` (the halting env's cost of a continue), grounded at the horizon
(after the last cycle there is no continuing). It serves when the Q values learnt in training
drift: without a cost, halting and continuing tie on a puzzle already solved, a bootstrapped
q_continue with no target network can climb above q_halt there, and the model then thinks to
its limit on every puzzle.

The result is a full checkpoint whose weights are the base's except the Q head. Its lineage
gains one entry for this step (its CPU-minutes cover recording and fitting), and the totals
are recomputed::

    python scripts/finetune_q_head.py runs/sudoku-c3/model runs/sudoku-c3-q/model \\
        --difficulty easy:0.2,medium:0.4,hard:0.4 --puzzles 1024 --max-cycles 64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from hrm_agent.checkpoint import load_checkpoint, save_checkpoint
from hrm_agent.qhead import finetune_q_head
from hrm_agent.train import lineage_totals, parse_difficulty_mix, sample_mix
from hrm_env.puzzles.tasks import get_task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="stem of the base checkpoint")
    parser.add_argument("out", help="stem to write (OUT.safetensors + OUT.json)")
    parser.add_argument("--difficulty", default=None, help="tier or mix (default: the task's)")
    parser.add_argument("--puzzles", type=int, default=1024, help="fresh training puzzles")
    parser.add_argument("--max-cycles", type=int, default=None, help="default: N x max_segments")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps of the head")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--step-cost",
        type=float,
        default=0.01,
        help="taken off the value of continuing (the env's)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if Path(f"{args.out}.json").exists():
        parser.error(f"{args.out}.json exists; choose another OUT")

    cpu0, wall0 = time.process_time(), time.perf_counter()
    model, _, meta = load_checkpoint(args.checkpoint)
    task = meta.get("task") or parser.error(f"{args.checkpoint} names no task")
    max_cycles = args.max_cycles or model.config.max_cycles
    spec = get_task(task)
    mix = args.difficulty or spec.default_difficulty
    rng = np.random.default_rng([args.seed, 11])
    puzzles = sample_mix(spec, parse_difficulty_mix(spec, mix), rng, args.puzzles)
    result = finetune_q_head(
        model, task, steps=args.steps, max_cycles=max_cycles, lr=args.lr, seed=args.seed,
        puzzles=puzzles, step_cost=args.step_cost,
    )  # fmt: skip
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0

    info = result.meta["q_head_finetune"]
    info.update(base=str(args.checkpoint), difficulty=mix)
    new_meta = {k: v for k, v in meta.items() if k != "task"}
    new_meta.update(result.meta)
    lineage = list(meta.get("lineage") or [])
    lineage.append(
        {
            "run": f"q-head refit ({Path(__file__).name})",
            "init_from": str(args.checkpoint),
            "difficulty": mix,
            "steps": int(args.steps),
            "q_head_only": True,
            "minutes": round(wall / 60, 3),
            "cpu_minutes": round(cpu / 60, 3),
            "device": "cpu",
            "threads": torch.get_num_threads(),
            "world_size": 1,
        }
    )
    new_meta["lineage"] = lineage
    new_meta.update(lineage_totals(lineage))
    save_checkpoint(Path(args.out), result.model.cpu(), meta=new_meta, task=task)
    print(json.dumps({"before": info["before"], "after": info["after"]}))
    print(f"wrote {args.out}.safetensors / .json ({cpu / 60:.1f} CPU-minutes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
