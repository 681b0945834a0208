"""What the wrong maze answers get wrong: extra cells, missing cells, or both.

Runs a checkpoint on a maze CSV, takes each answer (at the Q head's halt, or after the last
cycle) and sorts the wrong ones by two questions:

* does the set of marked cells contain a whole shortest path from S to G, or does it connect
  S to G only by a longer route (a detour: the model found a way, not the shortest one)?
* does it mark cells that lie on *no* shortest path (``maze.shortest_path_cells``)? Such a
  cell is wrong whatever the tie-break; the rest of a wrong answer's extra cells are on some
  other shortest path, a tie left unbroken.

Prints a Markdown table with the mean number of extra and missing cells per kind, and the
stricter score the public maze benchmarks use: the answer equals the file's own solution (the
solver's tie-break among shortest paths), where the table's "correct" accepts any shortest path.

    hrm data maze --difficulty easy -n 1000 --seed 777 --out easy.csv
    python scripts/maze_errors.py easy.csv --limit 200 --halt q
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch

from hrm_agent.evaluate import evaluate
from hrm_agent.reasoner import load_model
from hrm_env.puzzles import maze
from hrm_env.puzzles.tasks import get_task


def classify(question: np.ndarray, answer: np.ndarray) -> tuple[str, int, int]:
    """The kind of one answer and its counts of off-path and missing cells.

    Returns:
        (kind, off, missing): ``off`` marked cells on no shortest path; ``missing`` is how many
        more cells a shortest path has than the marked ones on shortest paths (0 when they
        hold one).
    """
    if maze.is_valid_shortest_path(question, answer):
        return "correct", 0, 0
    union = maze.shortest_path_cells(question)
    marked = answer == maze.PATH
    ends = (question == maze.START) | (question == maze.GOAL)
    length = maze.shortest_path_length(question)
    only_marked = np.where(marked | ends, question, maze.WALL).astype(np.uint8)
    through_marked = maze.shortest_path_length(only_marked)  # -1: the marks do not connect
    whole = through_marked == length
    off = int(np.count_nonzero(marked & ~union))
    on = int(np.count_nonzero(marked & union))
    missing = 0 if whole else max(length - 1 - on, 0)
    if whole:
        head = "holds a shortest path"
    elif through_marked > length:
        head = "connects S to G only by a longer route (a detour)"
    else:
        head = "no marked route from S to G"
    kind = head + (
        ", plus cells on no shortest path" if off else ", plus tied cells" if whole else ""
    )
    return kind, off, missing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="maze CSV (hrm data maze ... --out FILE)")
    parser.add_argument("--checkpoint", default=None, help="default: the shipped maze model")
    parser.add_argument("--limit", type=int, default=None, help="the first N mazes")
    parser.add_argument("--halt", choices=("q", "max"), default="q")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = get_task("maze")
    batch = task.load(args.data)
    if args.limit is not None:
        batch = batch[np.arange(min(args.limit, len(batch)))]
    model, _ = load_model("maze", args.checkpoint, "cpu")
    result = evaluate(model, task, batch)
    answers = result.q_predictions if args.halt == "q" else result.predictions
    kinds: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for question, answer in zip(batch.inputs, answers, strict=True):
        kind, off, missing = classify(question.astype(np.uint8), answer)
        kinds[kind].append((off, missing))
    n = len(batch)
    print(
        f"{n} mazes from {args.data}, answers at {'the Q halt' if args.halt == 'q' else 'the last cycle'}"
    )
    strict = int((np.asarray(answers) == batch.targets).all(axis=1).sum())
    correct = len(kinds.get("correct", []))
    print(
        f"any shortest path: {correct} ({correct / n:.1%}); the file's own path: {strict} "
        f"({strict / n:.1%})"
    )
    print("\n| answer | mazes | share | mean cells on no shortest path | mean cells missing |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind, rows in sorted(kinds.items(), key=lambda item: -len(item[1])):
        off, missing = np.mean(rows, axis=0) if rows else (0.0, 0.0)
        print(f"| {kind} | {len(rows)} | {len(rows) / n:.1%} | {off:.1f} | {missing:.1f} |")


if __name__ == "__main__":
    main()
