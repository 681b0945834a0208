"""Time-to-accuracy curves: held-out exact accuracy against CPU-minutes, from runs' eval.csv.

Each run folder written by ``hrm train --eval-difficulty ...`` holds an ``eval.csv`` with one
row per tier and evaluation (``cpu_minutes`` is the process CPU time of the training steps).
A run continued with ``--init-from`` is offset by its parent's CPU-minutes when given as
``PARENT_MINUTES:FOLDER``. A run made on another device (``scripts/device_sweep.py``) is placed
at its CPU-equivalent time when given as ``FOLDER@SECONDS_PER_STEP`` (the CPU's measured
seconds per step of the same model and batch): its ``cpu_minutes`` column is host time.

    python scripts/plot_training.py runs/pair-a runs/pair-b --out docs/figures/sudoku_time.png
    python scripts/plot_training.py runs/s1 95.2:runs/s2 --tiers easy,medium,hard --out f.png
    python scripts/plot_training.py runs/s1 74.8:runs/sweep/s3@0.608 --out f.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from hrm_agent.distribution import require
from hrm_env.fileio import save_figure


def read_eval(folder: Path) -> list[dict[str, str]]:
    """The rows of ``folder/eval.csv``."""
    path = folder / "eval.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no eval.csv in {folder}")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders, optionally OFFSET:FOLDER")
    parser.add_argument("--tiers", default=None, help="only these tiers (comma-separated)")
    parser.add_argument("--labels", default=None, help="comma-separated label per run")
    parser.add_argument("--metric", default="exact_accuracy", help="eval.csv column to plot")
    parser.add_argument("--title", default="held-out exact accuracy against CPU time")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    Figure = require("matplotlib.figure", "viz", "plot_training.py").Figure

    labels = args.labels.split(",") if args.labels else None
    tiers = set(args.tiers.split(",")) if args.tiers else None
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    styles = ["-", "--", ":", "-."]
    for i, spec in enumerate(args.runs):
        offset_text, sep, folder = spec.rpartition(":")
        offset = float(offset_text) if sep else 0.0
        folder, at, rate_text = folder.partition("@")
        rate = float(rate_text) if at else None
        rows = read_eval(Path(folder))
        by_tier: dict[str, list[tuple[float, float]]] = {}
        for r in rows:
            tier = r.get("tier") or "test"
            if tiers and tier not in tiers:
                continue
            if rate is not None:
                minutes = int(r["step"]) * rate / 60 + offset
            else:
                minutes = float(r.get("cpu_minutes") or r.get("minutes") or 0) + offset
            by_tier.setdefault(tier, []).append((minutes, float(r[args.metric])))
        name = labels[i] if labels and i < len(labels) else Path(folder).name
        for j, (tier, points) in enumerate(sorted(by_tier.items())):
            xs, ys = zip(*sorted(points), strict=True)
            # Colour tells the run, line style the tier.
            ax.plot(
                xs,
                ys,
                styles[j % len(styles)],
                marker="o",
                markersize=3,
                color=f"C{i}",
                label=f"{name} {tier}",
            )
    ax.set_xlabel("training CPU-minutes")
    ax.set_ylabel(args.metric.replace("_", " "))
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.set_title(args.title)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    save_figure(fig, args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
