"""Inference-time scaling: exact accuracy against the cycle limit, past the trained limit.

HRM claims its computation "extends without retraining". This runs a checkpoint for up to
``max(--limits)`` cycles on held-out puzzles and reads the exact accuracy at each limit off the
per-cycle curve (one evaluation gives every smaller limit), per tier and, for mazes, per bucket
of shortest-path length. Writes ``scaling.json`` and ``scaling.png`` to ``--out`` and prints a
Markdown table.

    python scripts/scaling.py sudoku --tiers hard --n 1000 --seed 7 --limits 8,16,32,64
    python scripts/scaling.py maze --tiers hard --n 500 --seed 7 --limits 16,32,64,128 \\
        --buckets 111,131,151,171,191
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from hrm_agent.distribution import require
from hrm_agent.evaluate import evaluate
from hrm_agent.reasoner import load_model
from hrm_env.fileio import save_figure, write_text
from hrm_env.puzzles.tasks import PuzzleBatch, get_task


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _pooled(name: str, rows: list[dict]) -> dict:
    """The row of several disjoint groups together: every figure weighted by group size."""
    weights = np.array([row["n"] for row in rows], dtype=np.float64)
    weights /= weights.sum()

    def mix(values: list) -> np.ndarray:
        return np.tensordot(weights, np.asarray(values, dtype=np.float64), axes=1)

    keys = list(rows[0]["exact_at"])
    exact = mix([[r["exact_at"][k] for k in keys] for r in rows]).tolist()
    return {
        "group": name,
        "n": int(sum(row["n"] for row in rows)),
        "exact_at": dict(zip(keys, exact, strict=True)),
        "q_exact": float(mix([r["q_exact"] for r in rows])),
        "q_mean_cycles": float(mix([r["q_mean_cycles"] for r in rows])),
        "curve": mix([r["curve"] for r in rows]).tolist(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task")
    parser.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    parser.add_argument("--tiers", default="hard", help="comma-separated tiers to generate")
    parser.add_argument("--n", type=int, default=500, help="puzzles per tier")
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated puzzles")
    parser.add_argument("--limits", default="8,16,32,64", help="cycle limits to report")
    parser.add_argument(
        "--buckets", default=None, help="maze: lower edges of path-length buckets, e.g. 111,131"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/scaling"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    task = get_task(args.task)
    model, _ = load_model(task.name, args.checkpoint, "cpu")
    limits = sorted(_ints(args.limits))
    n_per = model.config.h_cycles
    segments = -(-max(limits) // n_per)
    trained = model.config.max_cycles
    rng = np.random.default_rng(args.seed)
    rows: list[dict] = []
    for tier in [t for t in args.tiers.split(",") if t]:
        batch = task.sample(rng, args.n, tier)
        groups: list[tuple[str, PuzzleBatch]] = [(tier, batch)]
        if args.buckets:
            # Each puzzle is run once, in its bucket; the tier's row is their weighted sum.
            edges = [*_ints(args.buckets), np.iinfo(np.int32).max]
            below = batch.ratings < edges[0]
            groups = [(f"{tier} <{edges[0]}", batch[np.flatnonzero(below)])] if below.any() else []
            for lo, hi in zip(edges[:-1], edges[1:], strict=True):
                keep = (batch.ratings >= lo) & (batch.ratings < hi)
                if keep.any():
                    label = f"{lo}-{hi - 1}" if hi != edges[-1] else f">={lo}"
                    groups.append((f"{tier} {label}", batch[np.flatnonzero(keep)]))
        tier_rows = []
        for name, group in groups:
            result = evaluate(model, task, group, max_segments=segments)
            tier_rows.append(
                {
                    "group": name,
                    "n": len(group),
                    "exact_at": {str(k): float(result.exact_per_cycle[k - 1]) for k in limits},
                    "q_exact": result.q_exact_accuracy,
                    "q_mean_cycles": result.q_mean_cycles,
                    "curve": [float(v) for v in result.exact_per_cycle],
                }
            )
            print(json.dumps({k: v for k, v in tier_rows[-1].items() if k != "curve"}), flush=True)
        if len(tier_rows) > 1:
            tier_rows.insert(0, _pooled(tier, tier_rows))
        rows.extend(tier_rows)

    write_text(
        args.out / "scaling.json",
        json.dumps({"task": task.name, "trained_cycles": trained, "rows": rows}, indent=1),
    )
    header = " | ".join(f"{k} cycles{' *' if k > trained else ''}" for k in limits)
    print(f"\n| puzzles | n | {header} | Q-halt, limit {max(limits)} (mean cycles) |")
    print("| --- | ---: |" + " ---: |" * (len(limits) + 1))
    for row in rows:
        cells = " | ".join(f"{100 * row['exact_at'][str(k)]:.1f}%" for k in limits)
        q = f"{100 * row['q_exact']:.1f}% ({row['q_mean_cycles']:.1f})"
        print(f"| {row['group']} | {row['n']} | {cells} | {q} |")
    print(f"(* past the trained limit of {trained} cycles)")

    Figure = require("matplotlib.figure", "viz", "scaling.py's figure").Figure
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for row in rows:
        ax.plot(range(1, len(row["curve"]) + 1), row["curve"], label=f"{row['group']}")
    ax.axvline(trained, color="gray", linestyle="--", linewidth=1)
    ax.text(trained, 0.02, " trained limit", color="gray")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("cycle limit")
    ax.set_ylabel("exact accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"{task.name}: accuracy against the cycle limit")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, args.out / "scaling.png", dpi=110)
    print(f"wrote {args.out / 'scaling.json'} and {args.out / 'scaling.png'}")


if __name__ == "__main__":
    main()
