"""How exact a maze model's on-path head is, beside its answer.

A model trained with ``--aux-target on-path`` has a second head that says, for every open
cell, whether the cell lies on *some* shortest path from S to G. This script runs the model
for its cycle limit on a maze CSV and counts, per maze, whether that head is right on every
open cell (against ``maze.shortest_path_cells``) and whether the answer is a shortest path.
If the head were exact where the answer is not, the answer would only have to pick one path
out of a known set; if the head is wrong more often than the answer, the model does not
compute the set exactly and answers from something else.

    hrm data maze --difficulty medium -n 1000 --seed 777 --out medium.csv
    python scripts/maze_aux_head.py medium.csv --limit 200
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hrm_agent.reasoner import load_model
from hrm_env.puzzles import maze
from hrm_env.puzzles.tasks import get_task


def head_exact(question: np.ndarray, on_path: np.ndarray) -> bool:
    """Whether a (S,) bool on-path guess is right on every open cell of a (S,) question; the
    head's guesses on walls, S and G are not read."""
    open_cells = question == maze.OPEN
    return bool(np.array_equal(on_path[open_cells], maze.shortest_path_cells(question)[open_cells]))


def main(argv: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Prints the table; returns the (N,) bool per-maze answer and head verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="maze CSV (hrm data maze ... --out FILE)")
    parser.add_argument("--checkpoint", default=None, help="default: the shipped maze model")
    parser.add_argument("--limit", type=int, default=None, help="the first N mazes")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, _ = load_model("maze", args.checkpoint, "cpu")
    if model.config.aux_target != "on-path":
        raise SystemExit(
            f"this checkpoint has no on-path head (its aux_target is "
            f"{model.config.aux_target!r}); train one with hrm train maze --aux-target on-path"
        )
    batch = get_task("maze").load(args.data)
    questions = batch.inputs[: args.limit].astype(np.uint8)
    answer_ok, head_ok = [], []
    with torch.no_grad():
        for start in range(0, len(questions), args.batch_size):
            part = questions[start : start + args.batch_size]
            tokens = torch.as_tensor(part.astype(np.int64))
            carry = model.initial_carry(len(part))
            for _ in range(model.config.max_segments):
                carry, outputs = model(carry, tokens)
            answers = outputs.logits.argmax(-1).numpy().astype(np.uint8)
            answer_ok.extend(maze.check_batch(part, answers).tolist())
            on_path = outputs.aux_logits.argmax(-1).numpy().astype(bool)
            head_ok.extend(head_exact(q, guess) for q, guess in zip(part, on_path, strict=True))
    answer, head = np.array(answer_ok), np.array(head_ok)
    n = len(answer)
    cycles = model.config.h_cycles * model.config.max_segments
    print(f"{n} mazes from {args.data}, after {cycles} cycles")
    print(
        "| answer a shortest path | on-path head exact | both | the head only | the answer only |"
    )
    print("| ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {answer.mean():.1%} | {head.mean():.1%} | {(answer & head).mean():.1%} "
        f"| {(head & ~answer).mean():.1%} | {(answer & ~head).mean():.1%} |"
    )
    return answer, head


if __name__ == "__main__":
    main()
