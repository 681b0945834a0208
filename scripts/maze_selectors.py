"""Can the maze model tell which of its views is right? Its own signals against pass@K.

Runs K views of every maze (its rotations and reflections, as ``hrm eval --samples 8
--views``), each trajectory halting by its own Q head, and records at each halt what the model
says about its answer besides the answer itself:

* ``q_halt``, and the margin ``q_halt - q_continue``;
* the answer head's confidence on the open cells (the cells it decides): the lowest top
  probability over them, and the log-probability of the whole answer (the sum of their logs);
* how many cycles the answer had stood unchanged when the trajectory halted.

Prints the exact accuracy of picking one trajectory per maze by each signal, beside the rules
of ``hrm_agent.sampling`` (``q``, ``first``, ``vote``) and the rule checker (pass@K, which
sees the maze's rules and is not the model's choice).

    hrm data maze --difficulty medium -n 1000 --seed 777 --out medium.csv
    python scripts/maze_selectors.py medium.csv --limit 200
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from hrm_agent.evaluate import iterate_cycles
from hrm_agent.reasoner import load_model
from hrm_agent.sampling import (
    MODEL_RULES,
    Diversity,
    HaltTracker,
    Trajectories,
    chosen,
    make_views,
    repeat_rows,
    rule_accuracy,
    votes,
)
from hrm_env.puzzles import maze
from hrm_env.puzzles.tasks import get_task

SIGNALS = ("q_margin", "least_sure", "log_prob", "steady")


def confidence(logits: torch.Tensor, rows: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the lowest top probability over its open cells, and their summed log."""
    top = torch.softmax(logits.float(), dim=-1).amax(dim=-1)
    top = torch.where(rows == maze.OPEN, top, torch.ones_like(top))
    return top.amin(dim=-1).numpy(), torch.log(top).sum(dim=-1).numpy()


def run_views(
    model, task, inputs: np.ndarray, samples: int, batch: int
) -> tuple[Trajectories, dict[str, np.ndarray]]:
    """K views per maze, each to its own Q halt; the signals at each halt, (B, K) each."""
    segments = model.config.max_segments
    parts, found = [], {name: [] for name in SIGNALS}
    for lo in range(0, len(inputs), batch):
        chunk = inputs[lo : lo + batch]
        rows = repeat_rows(torch.from_numpy(chunk.astype(np.int64)), samples)
        shown = make_views(Diversity(views=True), task.views, len(chunk), samples, rows.device)
        if shown is not None:
            rows = shown.show(rows)
        tracker = HaltTracker(rows.shape[0], rows.shape[1], segments * model.config.h_cycles)
        at_halt = {name: np.zeros(rows.shape[0]) for name in SIGNALS}
        steady = np.zeros(rows.shape[0])
        previous = None
        for r in iterate_cycles(model, rows, segments):
            cells = r.predictions if shown is None else shown.back(r.predictions)
            answers = cells.to(torch.uint8).numpy()
            if r.segment_end:
                if previous is not None:
                    steady = np.where((answers == previous).all(axis=1), steady + 1, 0)
                previous = answers
            before = tracker.halted.copy()
            tracker.update(r, answers)
            new = tracker.halted & ~before
            if new.any():
                least, log_prob = confidence(r.logits, rows)
                margin = (r.q_halt - r.q_continue).float().numpy()
                for name, value in zip(SIGNALS, (margin, least, log_prob, steady), strict=True):
                    at_halt[name][new] = value[new]
            if tracker.done:
                break
        parts.append(Trajectories.from_tracker(tracker, samples))
        for name in SIGNALS:
            found[name].append(at_halt[name].reshape(len(chunk), samples))
    return Trajectories.concat(parts), {k: np.concatenate(v) for k, v in found.items()}


def signal_picks(
    trajectories: Trajectories, signals: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """(B,) the trajectory each signal picks: its highest value, ties to the highest q_halt;
    and the majority vote with each signal as its tie-break."""
    q, count = trajectories.q_halt, votes(trajectories)
    picks = {}
    for name, value in signals.items():
        picks[f"highest {name}"] = np.lexsort((-q, -value), axis=-1)[:, 0]
        picks[f"vote, then {name}"] = np.lexsort((-value, -count), axis=-1)[:, 0]
    return picks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="maze CSV (hrm data maze ...)")
    parser.add_argument("--checkpoint", default=None, help="checkpoint stem (default: shipped)")
    parser.add_argument("--limit", type=int, default=200, help="first N mazes")
    parser.add_argument("--samples", type=int, default=8, help="views per maze (K)")
    parser.add_argument("--batch", type=int, default=25, help="mazes per batch")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    task = get_task("maze")
    data = task.load(args.data)
    inputs, targets = data.inputs[: args.limit], data.targets[: args.limit]
    model, _ = load_model("maze", args.checkpoint, "cpu")
    trajectories, signals = run_views(model, task, inputs, args.samples, args.batch)

    def exact(index: np.ndarray) -> float:
        answers = chosen(trajectories, index)
        return float(np.mean(task.is_correct(inputs, answers, targets)))

    rules = rule_accuracy(task, inputs, targets, trajectories)
    rows = [("one trajectory (the plain model)", exact(np.zeros(len(inputs), dtype=np.int64)))]
    rows += [(f"rule `{rule}`", rules[rule]["exact_accuracy"]) for rule in MODEL_RULES]
    rows += [(name, exact(index)) for name, index in signal_picks(trajectories, signals).items()]
    rows += [
        (f"rule checker (pass@{args.samples}, not the model)", rules["checker"]["exact_accuracy"])
    ]
    print(f"| pick, {len(inputs)} mazes, {args.samples} views | exact |")
    print("| --- | ---: |")
    for name, accuracy in rows:
        print(f"| {name} | {100 * accuracy:.1f}% |")


if __name__ == "__main__":
    main()
