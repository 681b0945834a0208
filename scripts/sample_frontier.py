"""Thinking wider against thinking longer: exact accuracy against total cycles spent.

Two steps, each writing JSON (and the second a CSV and a PNG) to ``--out``:

``sources``: which noise makes useful trajectories. On the first ``--n`` puzzles of a set,
K trajectories per puzzle at the model's cycle limit, for each source and size in
``--carry``, ``--init``, ``--dropout`` and ``--guess`` (guess cycles); every selection rule's
exact accuracy. The best source is the one whose model-own ``q`` rule scores highest (ties:
pass@K).

``frontier``: for each set, one run of ``max(--samples)`` trajectories at the model's limit
(the rules at smaller K read off its first K trajectories, a K-sample of its own), and one
plain run to ``max(--cycles)`` cycles (the more-cycles-only curve: Q-halting at each limit
read off the same run). x = K x cycles per trajectory, the cycle budget per puzzle.

    python scripts/sample_frontier.py sources --data extreme-mix --n 100 --samples 8 \\
        --carry 0.1,0.3,1 --init 0.3,1,3 --dropout 0.05,0.15,0.3 --out runs/samples
    python scripts/sample_frontier.py frontier --data hard.csv,extreme-mix,extreme --n 200 \\
        --samples 1,2,4,8,16 --cycles 16,32,64,128 --best runs/samples/sources.json \\
        --out runs/samples
    python scripts/sample_frontier.py frontier --guess-cycle 8 --guess-depth 5 --guess-every 8 \\
        --sigma 0.3 --out runs/tree   # a tree of guesses with carry noise
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_agent.devices import default_batch_size
from hrm_agent.evaluate import iterate_cycles
from hrm_agent.reasoner import load_model
from hrm_agent.sampling import (
    RULES,
    Diversity,
    HaltTracker,
    Trajectories,
    rule_accuracy,
    run_trajectories,
)
from hrm_env.puzzles.tasks import PuzzleBatch, get_task

BLANK = get_task("sudoku").blank_token

LABELS = {
    "q": "highest q_halt (model)",
    "first": "first to halt (model)",
    "vote": "majority vote (model)",
    "checker": "rule checker (pass@K, upper bound)",
}


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _cpu() -> float:
    return time.process_time()


def trajectories_of(
    model: Any,
    puzzles: PuzzleBatch,
    samples: int,
    diversity: Diversity,
    seed: int,
    batch_size: int,
) -> Trajectories:
    """All puzzles' trajectories, ``batch_size`` puzzles (times ``samples`` rows) at a time."""
    parts = []
    for lo in range(0, len(puzzles), batch_size):
        tokens = torch.from_numpy(puzzles.inputs[lo : lo + batch_size].astype(np.int64))
        parts.append(run_trajectories(model, tokens, samples, diversity, seed + lo, blank=BLANK))
    return Trajectories.concat(parts)


def prefix(trajectories: Trajectories, k: int) -> Trajectories:
    """The first ``k`` trajectories of every puzzle."""
    t = trajectories
    return Trajectories(t.answers[:, :k], t.q_halt[:, :k], t.cycles[:, :k])


def cycles_curve(
    model: Any, puzzles: PuzzleBatch, limits: list[int], batch_size: int
) -> dict[int, dict[str, float]]:
    """Plain-model Q-halting exact accuracy at each cycle limit, from one run to the largest."""
    task = get_task("sudoku")
    N = model.config.h_cycles
    hits = {c: 0 for c in limits}
    spent = {c: 0 for c in limits}
    for lo in range(0, len(puzzles), batch_size):
        batch = puzzles[lo : lo + batch_size]
        tokens = torch.from_numpy(batch.inputs.astype(np.int64))
        trackers = {c: HaltTracker(len(batch), batch.inputs.shape[1], c) for c in limits}
        for r in iterate_cycles(model, tokens, max(limits) // N):
            preds = r.predictions.to(torch.uint8).numpy()
            for c, tracker in trackers.items():
                if r.cycle <= c:
                    tracker.update(r, preds)
        for c, tracker in trackers.items():
            ok = task.is_correct(batch.inputs, tracker.answers, batch.targets)
            hits[c] += int(np.sum(ok))
            spent[c] += int(tracker.cycles.sum())
    n = len(puzzles)
    return {c: {"exact_accuracy": hits[c] / n, "mean_cycles": spent[c] / n} for c in limits}


def _batch(args: argparse.Namespace, samples: int) -> int:
    """Puzzles per pass: ``--batch-size``, else the CPU default for ``samples`` rows each."""
    return args.batch_size or default_batch_size("cpu", samples)


def load_set(name: str, n: int) -> PuzzleBatch:
    return get_task("sudoku").eval_data(name)[:n]


def run_sources(args: argparse.Namespace, model: Any) -> None:
    puzzles = load_set(args.data, args.n)
    (k,) = _ints(args.samples)
    configs = (
        [Diversity(carry_sigma=s) for s in _floats(args.carry)]
        + [Diversity(init_sigma=s) for s in _floats(args.init)]
        + [Diversity(input_dropout=p) for p in _floats(args.dropout)]
        + [Diversity(guess_cycle=g) for g in _ints(args.guess)]
    )
    rows = []
    for diversity in configs:
        wall, cpu = time.perf_counter(), _cpu()
        t = trajectories_of(model, puzzles, k, diversity, args.seed, _batch(args, k))
        rules = rule_accuracy(get_task("sudoku"), puzzles.inputs, puzzles.targets, t)
        plain = rule_accuracy(get_task("sudoku"), puzzles.inputs, puzzles.targets, prefix(t, 1))
        row = {
            "source": diversity.label(),
            "plain": plain["q"]["exact_accuracy"],
            "diversity": dataclasses.asdict(diversity),
            "k": k,
            "rules": rules,
            "wall_s": time.perf_counter() - wall,
            "cpu_s": _cpu() - cpu,
        }
        rows.append(row)
        print(
            f"{row['source']:>14}  "
            + "  ".join(f"{r} {rules[r]['exact_accuracy']:.3f}" for r in RULES if rules[r])
            + f"  (K=1 {row['plain']:.3f}; {row['cpu_s']:.0f} CPU-s)",
            flush=True,
        )
        _write(args.out / "sources.json", {"data": args.data, "n": len(puzzles), "rows": rows})
    best = max(
        rows,
        key=lambda r: (r["rules"]["q"]["exact_accuracy"], r["rules"]["checker"]["exact_accuracy"]),
    )
    _write(
        args.out / "sources.json",
        {"data": args.data, "n": len(puzzles), "rows": rows, "best": best},
    )
    print(f"best by the q rule: {best['source']}")


def run_frontier(args: argparse.Namespace, model: Any) -> None:
    if args.best:
        best = json.loads(Path(args.best).read_text())["best"]
        diversity = Diversity(**best["diversity"])
    else:  # --guess-cycle 0 is no guesses
        tree = {"guess_depth": args.guess_depth, "guess_every": args.guess_every}
        diversity = Diversity(
            carry_sigma=args.sigma,
            guess_cycle=args.guess_cycle,
            **(tree if args.guess_cycle else {}),
        )
    ks = _ints(args.samples)
    limits = _ints(args.cycles)
    C = model.config.max_cycles
    results: dict[str, Any] = {"diversity": diversity.label(), "cycles": C, "sets": {}}
    for name in args.data.split(","):
        puzzles = load_set(name, args.n)
        wall, cpu = time.perf_counter(), _cpu()
        t = trajectories_of(model, puzzles, max(ks), diversity, args.seed, _batch(args, max(ks)))
        task = get_task("sudoku")
        by_k = {k: rule_accuracy(task, puzzles.inputs, puzzles.targets, prefix(t, k)) for k in ks}
        curve = cycles_curve(model, puzzles, limits, _batch(args, 1))
        entry = {
            "n": len(puzzles),
            "samples": {str(k): v for k, v in by_k.items()},
            "more_cycles": {str(c): v for c, v in curve.items()},
            "wall_s": time.perf_counter() - wall,
            "cpu_s": _cpu() - cpu,
        }
        results["sets"][os.path.basename(name)] = entry
        more = ", ".join(f"{c}: {v['exact_accuracy']:.3f}" for c, v in curve.items())
        samples = ", ".join(f"K={k} q {by_k[k]['q']['exact_accuracy']:.3f}" for k in ks)
        print(f"{name}: {samples}; cycles-only {more} ({entry['cpu_s']:.0f} CPU-s)", flush=True)
        _write(args.out / "frontier.json", results)
    _write_csv(args.out / "frontier.csv", results)
    plot(results, args.out / "frontier.png")


def _write(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def _write_csv(path: Path, results: dict[str, Any]) -> None:
    C = results["cycles"]
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            ["set", "curve", "k", "cycles", "total_cycles", "exact_accuracy", "mean_cycles"]
        )
        for name, entry in results["sets"].items():
            for k, rules in entry["samples"].items():
                for rule, v in rules.items():
                    if v is not None:
                        row = [name, rule, k, C, int(k) * C, v["exact_accuracy"], v["mean_cycles"]]
                        out.writerow(row)
            for c, v in entry["more_cycles"].items():
                out.writerow([name, "more cycles", 1, c, c, v["exact_accuracy"], v["mean_cycles"]])


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = results["sets"]
    fig, axes = plt.subplots(1, len(sets), figsize=(4.6 * len(sets), 4), squeeze=False)
    C = results["cycles"]
    for ax, (name, entry) in zip(axes[0], sets.items(), strict=True):
        ks = [int(k) for k in entry["samples"]]
        for rule in RULES:
            ys = [entry["samples"][str(k)][rule] for k in ks]
            if any(y is None for y in ys):
                continue
            style = "--" if rule == "checker" else "-"
            ax.plot(
                [k * C for k in ks],
                [100 * y["exact_accuracy"] for y in ys],
                style,
                marker="o",
                label=LABELS[rule],
            )
        cs = [int(c) for c in entry["more_cycles"]]
        ax.plot(
            cs,
            [100 * entry["more_cycles"][str(c)]["exact_accuracy"] for c in cs],
            ":",
            marker="s",
            color="black",
            label="more cycles only (K = 1)",
        )
        ax.set_xscale("log", base=2)
        ax.set_title(f"{name} ({entry['n']} puzzles)")
        ax.set_xlabel(f"cycle budget per puzzle (K x {C}, or cycles)")
        ax.set_ylabel("exact accuracy, %")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"K trajectories ({results['diversity']}) against more cycles")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("sources", "frontier"))
    parser.add_argument("--checkpoint", default=None, help="default: the shipped sudoku model")
    parser.add_argument("--data", default="extreme-mix", help="set(s): a file or a test set name")
    parser.add_argument("--n", type=int, default=100, help="first N puzzles of each set")
    parser.add_argument("--samples", default="8", help="K (sources) or the K list (frontier)")
    parser.add_argument("--cycles", default="16,32,64,128", help="limits of the K=1 curve")
    parser.add_argument("--carry", default="0.1,0.3,1", help="carry-noise sigmas to compare")
    parser.add_argument("--init", default="0.3,1,3", help="initial-state sigmas to compare")
    parser.add_argument("--dropout", default="0.05,0.15,0.3", help="input-dropout rates")
    parser.add_argument("--guess", default="", help="guess cycles to compare (sources)")
    parser.add_argument("--best", default=None, help="sources.json whose best source to use")
    parser.add_argument("--sigma", type=float, default=0.3, help="carry sigma without --best")
    parser.add_argument(
        "--guess-cycle",
        type=int,
        default=0,
        help="frontier: guesses at this cycle, with carry noise --sigma (0: none)",
    )
    parser.add_argument(
        "--guess-depth", type=int, default=Diversity.guess_depth, help="frontier: levels of guesses"
    )
    parser.add_argument(
        "--guess-every", type=int, default=Diversity.guess_every, help="frontier: cycles per level"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="puzzles per batch (default: 16 rows)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("runs/samples"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, _ = load_model("sudoku", args.checkpoint, "cpu")
    wall, cpu = time.perf_counter(), _cpu()
    (run_sources if args.step == "sources" else run_frontier)(args, model)
    print(f"{args.step}: {time.perf_counter() - wall:.0f} s wall, {_cpu() - cpu:.0f} s CPU")


if __name__ == "__main__":
    main()
