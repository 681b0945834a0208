"""The accuracy-compute frontier of halting policies, and the ``hrm frontier`` command.

Every halting policy trades thinking for accuracy: more cycles, more puzzles right, more cost.
``hrm frontier TASK`` evaluates, on the same held-out puzzles, the baselines over a sweep of
their parameters (fixed ``k`` = 1..max cycles, confidence thresholds, answer stable for ``m``
cycles), the model's own Q head, optionally a fine-tuned Q head and any trained
stable-baselines3 policies, and writes

* ``frontier.csv``: one row per policy (accuracy, mean cycles, mean return, on the frontier),
* ``frontier.png``: exact accuracy against mean cycles, the Pareto frontier marked (a point
  is on it when no other point is at least as accurate with at most as many cycles, and
  better in one),
* ``frontier.json``: the same rows plus the settings,

and prints the table. The model runs once: every cycle of every puzzle is recorded
(:class:`~hrm_agent.policies.RecordedReasoner`) and replayed to the batched env for each
policy. An *oracle* row (halt at the first correct cycle, or at cycle 1 when none is; it reads
the solution, so it is a bound, not a policy) shows how much is left to gain.

Shapes: P puzzles, C cycles.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hrm_agent.cli import seed_type
from hrm_agent.distribution import require
from hrm_agent.policies import (
    ConfidencePolicy,
    FixedCyclesPolicy,
    HaltingPolicy,
    PolicyResult,
    QHeadPolicy,
    RecordedReasoner,
    SB3Policy,
    StablePolicy,
    evaluate_policy,
)
from hrm_env.envs.reasoner import Reasoner, model_cycle_limit
from hrm_env.fileio import atomic_open, check_writable, save_figure, write_text
from hrm_env.puzzles.tasks import PuzzleBatch, Task, get_task

__all__ = [
    "Entry",
    "FrontierPoint",
    "baseline_entries",
    "oracle_result",
    "pareto_front",
    "load_or_record",
    "model_max_cycles",
    "run_frontier",
    "write_csv",
    "plot_frontier",
    "format_table",
    "add_arguments",
    "run",
    "DEFAULT_THRESHOLDS",
    "DEFAULT_STABLE",
]

DEFAULT_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
DEFAULT_STABLE = (1, 2, 3, 4)
CSV_COLUMNS = (
    "family",
    "policy",
    "parameter",
    "exact_accuracy",
    "cell_accuracy",
    "mean_cycles",
    "mean_return",
    "on_frontier",
    "n",
    "step_cost",
    "max_cycles",
)


@dataclass(frozen=True)
class Entry:
    """One policy to put on the frontier.

    Attributes:
        family: its kind (``"fixed"``, ``"confidence"``, ``"stable"``, ``"q-head"``,
            ``"q-head-ft"``, ``"sb3"``), which the plot groups by.
        parameter: its parameter as text (``"k=3"``, ``"t=0.9"``, a file name, or ``""``).
        policy: the policy.
        reasoner: the model it drives, when not the frontier's own (e.g. the fine-tuned head).
    """

    family: str
    parameter: str
    policy: HaltingPolicy
    reasoner: Reasoner | None = None


@dataclass(frozen=True)
class FrontierPoint:
    """A policy's result, placed on the accuracy-compute plane.

    Attributes:
        family, parameter: as in :class:`Entry` (``"oracle"`` for the bound).
        result: its :class:`~hrm_agent.policies.PolicyResult`.
        on_frontier: whether no other policy dominates it (always False for the oracle).
    """

    family: str
    parameter: str
    result: PolicyResult
    on_frontier: bool = False

    def row(self) -> dict[str, Any]:
        """The CSV/JSON row."""
        r = self.result
        return {
            "family": self.family,
            "policy": r.policy,
            "parameter": self.parameter,
            "exact_accuracy": r.exact_accuracy,
            "cell_accuracy": r.cell_accuracy,
            "mean_cycles": r.mean_cycles,
            "mean_return": r.mean_return,
            "on_frontier": self.on_frontier,
            "n": r.n,
            "step_cost": r.step_cost,
            "max_cycles": r.max_cycles,
        }


def baseline_entries(
    task: str | Task,
    max_cycles: int,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    stable: Sequence[int] = DEFAULT_STABLE,
) -> list[Entry]:
    """The Q head, fixed k = 1..max_cycles, each confidence threshold and each stable m."""
    entries = [Entry("q-head", "", QHeadPolicy())]
    entries += [Entry("fixed", f"k={k}", FixedCyclesPolicy(k)) for k in range(1, max_cycles + 1)]
    entries += [Entry("confidence", f"t={t:g}", ConfidencePolicy(t, task)) for t in thresholds]
    entries += [Entry("stable", f"m={m}", StablePolicy(m)) for m in stable]
    return entries


def pareto_front(accuracy: Sequence[float], cycles: Sequence[float]) -> np.ndarray:
    """(N,) bool: the points no other point dominates (higher accuracy is better, fewer
    cycles is better; dominating = at least as good in both and better in one)."""
    acc = np.asarray(accuracy, dtype=np.float64)
    cyc = np.asarray(cycles, dtype=np.float64)
    if acc.shape != cyc.shape or acc.ndim != 1:
        raise ValueError(
            f"accuracy and cycles must be 1-D of one length, got {acc.shape}, {cyc.shape}"
        )
    at_least = (acc[None, :] >= acc[:, None]) & (cyc[None, :] <= cyc[:, None])  # [i, j]: j vs i
    better = (acc[None, :] > acc[:, None]) | (cyc[None, :] < cyc[:, None])
    return ~np.any(at_least & better, axis=1)


def oracle_result(
    recording: RecordedReasoner, puzzles: PuzzleBatch, step_cost: float, max_cycles: int
) -> PolicyResult:
    """The return-optimal halting with hindsight: the first correct cycle, else cycle 1.

    Reads the solutions, so it is an upper bound on every policy's accuracy and return (for
    this model and horizon), not a policy.
    """
    correct = recording.correct(puzzles.targets)[:, :max_cycles]  # (P, C)
    solvable = correct.any(axis=1)
    cycles = np.where(solvable, correct.argmax(axis=1) + 1, 1)
    returns = solvable.astype(np.float64) - step_cost * (cycles - 1)
    spec = get_task(recording.task)
    rows = np.arange(len(puzzles))
    answers = recording.predictions[rows, cycles - 1]
    cells = np.asarray(spec.cell_accuracy(puzzles.inputs, answers, puzzles.targets), dtype=float)
    return PolicyResult(
        policy="oracle",
        task=spec.name,
        n=len(puzzles),
        step_cost=float(step_cost),
        max_cycles=int(max_cycles),
        exact_accuracy=float(solvable.mean()),
        cell_accuracy=float(cells.mean()),
        mean_cycles=float(cycles.mean()),
        mean_return=float(returns.mean()),
        seconds=0.0,
        cycles=cycles.astype(np.int64),
        solved=solvable,
        returns=returns,
        cell_accuracies=cells,
    )


def run_frontier(
    reasoner: Reasoner,
    task: str | Task,
    puzzles: PuzzleBatch,
    entries: Sequence[Entry],
    step_cost: float = 0.01,
    max_cycles: int = 16,
    batch_size: int = 64,
    oracle: RecordedReasoner | None = None,
    progress: bool = False,
) -> list[FrontierPoint]:
    """Evaluate every entry on the same puzzles and mark the Pareto frontier.

    Args:
        reasoner: the model every entry drives unless it brings its own (pass a
            :class:`~hrm_agent.policies.RecordedReasoner` to run the model only once).
        task: the task (or its name).
        puzzles: the held-out puzzles.
        entries: the policies (see :func:`baseline_entries`).
        step_cost, max_cycles, batch_size: as for :func:`~hrm_agent.policies.evaluate_policy`.
        oracle: a recording of ``reasoner`` to add the oracle bound from (not on the frontier).
        progress: show a bar per policy.

    Returns:
        One :class:`FrontierPoint` per entry, in order, then the oracle if asked for.
    """
    spec = get_task(task) if isinstance(task, str) else task
    results = [
        evaluate_policy(
            e.policy,
            spec,
            puzzles,
            step_cost=step_cost,
            max_cycles=max_cycles,
            reasoner=e.reasoner if e.reasoner is not None else reasoner,
            batch_size=batch_size,
            progress=progress,
        )  # fmt: skip
        for e in entries
    ]
    front = pareto_front([r.exact_accuracy for r in results], [r.mean_cycles for r in results])
    points = [
        FrontierPoint(e.family, e.parameter, r, bool(f))
        for e, r, f in zip(entries, results, front, strict=True)
    ]
    if oracle is not None:
        points.append(
            FrontierPoint("oracle", "", oracle_result(oracle, puzzles, step_cost, max_cycles))
        )
    return points


def write_csv(points: Sequence[FrontierPoint], path: str | os.PathLike[str]) -> Path:
    """Write one row per point (columns ``CSV_COLUMNS``), whole or not at all.

    Raises:
        WriteError: naming ``path`` when it cannot be written.
    """
    path = Path(path)
    with atomic_open(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for p in points:
            writer.writerow(p.row())
    return path


def _pyplot() -> Any:
    matplotlib = require("matplotlib", "viz", "the frontier plot", "or pass --no-plot")
    matplotlib.use("Agg")  # files only: never open a window
    import matplotlib.pyplot as plt

    return plt


_STYLES = {
    "fixed": ("o", "tab:gray"),
    "confidence": ("^", "tab:blue"),
    "stable": ("s", "tab:green"),
    "q-head": ("D", "tab:red"),
    "q-head-ft": ("D", "tab:purple"),
    "sb3": ("P", "tab:orange"),
    "oracle": ("*", "gold"),
}


def plot_frontier(
    points: Sequence[FrontierPoint], path: str | os.PathLike[str] | None = None, title: str = ""
) -> Any:
    """Exact accuracy against mean cycles, one marker style per family, the frontier marked.

    Args:
        points: the frontier points.
        path: where to write the PNG (None: only return the figure).
        title: the plot title.

    Returns:
        The matplotlib ``Figure``; its axes hold a line labelled ``"Pareto frontier"``
        through the frontier points in order of cycles.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    families: dict[str, list[FrontierPoint]] = {}
    for p in points:
        families.setdefault(p.family, []).append(p)
    for family, members in families.items():
        marker, color = _STYLES.get(family, ("x", "black"))
        xs = [p.result.mean_cycles for p in members]
        ys = [100 * p.result.exact_accuracy for p in members]
        label = "oracle (reads the solution)" if family == "oracle" else family
        if family == "fixed" and len(members) > 1:
            ax.plot(xs, ys, color=color, alpha=0.4, linewidth=1)
        ax.scatter(xs, ys, marker=marker, color=color, s=90 if family == "oracle" else 36,
                   label=label, zorder=3, edgecolors="black", linewidths=0.4)  # fmt: skip
    front = sorted(
        (p for p in points if p.on_frontier),
        key=lambda p: (p.result.mean_cycles, p.result.exact_accuracy),
    )
    if front:
        ax.plot(
            [p.result.mean_cycles for p in front],
            [100 * p.result.exact_accuracy for p in front],
            color="black", linewidth=1.6, drawstyle="steps-post", label="Pareto frontier",
            zorder=2,
        )  # fmt: skip
        ax.scatter(
            [p.result.mean_cycles for p in front],
            [100 * p.result.exact_accuracy for p in front],
            s=140, facecolors="none", edgecolors="black", linewidths=1.2, zorder=4,
        )  # fmt: skip
    policies = [p for p in points if p.family != "oracle"]
    if policies:
        best = max(policies, key=lambda p: p.result.mean_return)
        ax.annotate(
            f"best return {best.result.mean_return:.3f}\n{best.result.policy}",
            (best.result.mean_cycles, 100 * best.result.exact_accuracy),
            textcoords="offset points", xytext=(10, -28), fontsize=8,
            arrowprops={"arrowstyle": "-", "color": "0.4"},
        )  # fmt: skip
    ax.set_xlabel("mean high-level cycles per puzzle")
    ax.set_ylabel("exact accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path)
    return fig


def format_table(points: Sequence[FrontierPoint]) -> str:
    """A fixed-width table of the points (frontier points starred)."""
    width = max([24, *(len(p.result.policy) for p in points)])
    header = f"{'policy':<{width}} {'accuracy':>9} {'cycles':>7} {'return':>8}  frontier"
    lines = [header, "-" * len(header)]
    for p in points:
        r = p.result
        lines.append(
            f"{r.policy:<{width}} {100 * r.exact_accuracy:>8.1f}% {r.mean_cycles:>7.2f} "
            f"{r.mean_return:>8.4f}  {'*' if p.on_frontier else ''}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
    return values


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hrm frontier``."""
    parser.add_argument("task", help="task name: sudoku, maze (or sudoku-mini)")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--checkpoint",
        default=None,
        help="checkpoint stem (default: the shipped checkpoint of the task)",
    )
    model.add_argument("--preset", default=None,
                       help="use a random-init model of this preset instead of a checkpoint "
                       "(tiny: a smoke test in seconds)")  # fmt: skip
    model.add_argument("--device", default="cpu", help="torch device of the model")
    model.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    data = parser.add_argument_group("puzzles and env")
    data.add_argument(
        "--data",
        default=None,
        help="puzzle file (CSV / .txt); default: the task's held-out test set",
    )
    data.add_argument("--n", type=int, default=500, help="puzzles to evaluate (default 500)")
    data.add_argument("--step-cost", type=float, default=0.01, help="cost of each continue")
    data.add_argument("--max-cycles", type=int, default=None,
                      help="cycles after which the env halts by itself (default: the model's "
                      "own limit, N x max_segments)")  # fmt: skip
    data.add_argument("--batch-size", type=int, default=64, help="rows of the batched env")
    data.add_argument("--recording", default=None, metavar="FILE",
                      help="cache of the held-out cycles (.npz): read if it holds these puzzles, "
                      "else recorded and written there")  # fmt: skip
    sweep = parser.add_argument_group("policies")
    sweep.add_argument(
        "--thresholds",
        type=_floats,
        default=list(DEFAULT_THRESHOLDS),
        help="confidence thresholds, comma-separated",
    )
    sweep.add_argument(
        "--stable",
        type=_ints,
        default=list(DEFAULT_STABLE),
        help="answer-stable cycle counts m, comma-separated",
    )
    sweep.add_argument(
        "--policies",
        nargs="*",
        default=[],
        metavar="[ALGO:]PATH",
        help="trained stable-baselines3 models (.zip), e.g. ppo:runs/x/policy.zip "
        "(the algorithm is read from the file when not given)",
    )
    sweep.add_argument(
        "--qhead-ft",
        default=None,
        metavar="STEM",
        help="a Q-head fine-tuned checkpoint of the same model (hrm_agent.qhead)",
    )
    sweep.add_argument(
        "--finetune-q",
        type=int,
        default=0,
        metavar="STEPS",
        help="fine-tune the Q head for this many steps on fresh training puzzles "
        "and add it as q-head-ft (0: off)",
    )
    sweep.add_argument(
        "--finetune-puzzles",
        type=int,
        default=1024,
        help="training puzzles for --finetune-q (default 1024)",
    )
    sweep.add_argument("--finetune-recording", default=None, metavar="FILE",
                       help="train --finetune-q on this recording of training puzzles (e.g. "
                       "the one examples/sb3_halting.py writes) instead of running the model")  # fmt: skip
    out = parser.add_argument_group("output")
    out.add_argument("--out", required=True, help="folder for frontier.csv, .png and .json")
    out.add_argument("--no-plot", action="store_true", help="skip the PNG")
    out.add_argument(
        "--seed", type=seed_type, default=0, help="seed of --preset init and --finetune-q"
    )
    out.add_argument("--progress", action="store_true", help="show progress bars")


def _parse_policy_arg(text: str) -> tuple[str | None, str]:
    head, sep, tail = text.partition(":")
    if sep and head.lower() in ("ppo", "dqn", "a2c"):
        return head.lower(), tail
    return None, text


def load_or_record(
    path: str | os.PathLike[str] | None,
    reasoner: Reasoner,
    puzzles: PuzzleBatch,
    cycles: int,
    batch_size: int = 64,
    progress: bool = False,
    source: str = "",
) -> RecordedReasoner:
    """A recording of ``reasoner`` on ``puzzles`` (with answers and Q-head features), read from
    ``path`` when that holds the same puzzles, else made now (and written to ``path``).

    The cache is trusted to come from the same model; delete it after changing the model.
    """
    from hrm_agent.qhead import prefix_features

    if path is not None and Path(path).is_file():
        cached = RecordedReasoner.load(path)
        if cached.matches(puzzles, cycles) and cached.features is not None:
            print(f"using the recorded cycles in {path}", file=sys.stderr)
            return cached
        print(f"{path} holds other puzzles or fewer cycles: recording again", file=sys.stderr)
    print(f"recording {len(puzzles)} puzzles x {cycles} cycles ({source}) ...", file=sys.stderr)
    features = prefix_features if hasattr(reasoner, "model") else None
    recording = RecordedReasoner.record(
        reasoner, puzzles, cycles, batch_size, features=features, progress=progress
    )
    if path is not None:
        recording.save(path)
    return recording


#: The cycle limit the model was trained for (N x max_segments), else a default of 16; the
#: name ``examples/sb3_halting.py`` imports.
model_max_cycles = model_cycle_limit


def _same_backbone(a: Any, b: Any) -> bool:
    import torch

    sa, sb = a.state_dict(), b.state_dict()
    if set(sa) != set(sb):
        return False
    return all(k.startswith("q_head.") or torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def run(args: argparse.Namespace) -> int:
    """``hrm frontier``: record once, evaluate every policy, write CSV + PNG + JSON."""
    import torch

    from hrm_agent.qhead import finetune_q_head, head_q_values
    from hrm_agent.reasoner import TorchReasoner, load_pretrained

    spec = get_task(args.task)
    for name in ("n", "max_cycles", "batch_size"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.step_cost < 0:
        raise ValueError(f"--step-cost must be >= 0, got {args.step_cost}")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.preset is not None and args.checkpoint is not None:
        raise ValueError("give either --preset or --checkpoint, not both")
    if not args.no_plot:
        _pyplot()  # fail before the long part if matplotlib is missing
    # The outputs too: a path that cannot be written is reported now, not after the recording.
    check_writable(args.out, folder=True)
    if args.recording is not None:
        check_writable(args.recording)
    started = time.perf_counter()

    if args.preset is not None:
        from hrm_agent.config import HRMConfig
        from hrm_agent.model import HRM

        config = HRMConfig.preset(args.preset, seq_len=spec.seq_len, vocab_size=spec.vocab_size)
        model = HRM(config, generator=torch.Generator().manual_seed(args.seed))
        reasoner = TorchReasoner(model, spec.name, device=args.device)
        source = f"random {args.preset} model"
    else:
        reasoner = load_pretrained(spec.name, device=args.device, checkpoint=args.checkpoint)
        source = args.checkpoint or f"shipped {spec.name} checkpoint"
    if args.max_cycles is None:
        args.max_cycles = model_max_cycles(reasoner)
    puzzles = spec.eval_data(args.data or None)
    puzzles = puzzles[: args.n]

    recording = load_or_record(
        args.recording, reasoner, puzzles, args.max_cycles, args.batch_size, args.progress, source
    )
    assert recording.features is not None
    record_seconds = time.perf_counter() - started

    entries = baseline_entries(spec, args.max_cycles, args.thresholds, args.stable)
    finetune_meta: dict[str, Any] | None = None
    if args.finetune_q > 0:
        train_recording = None
        if args.finetune_recording is not None:
            train_recording = RecordedReasoner.load(args.finetune_recording)
        result = finetune_q_head(
            reasoner.model, spec, steps=args.finetune_q, n_puzzles=args.finetune_puzzles,
            max_cycles=args.max_cycles, seed=args.seed, recording=train_recording,
            progress=args.progress,
        )  # fmt: skip
        q = head_q_values(result.model.q_head, recording.features)
        entries.append(Entry("q-head-ft", f"steps={args.finetune_q}", QHeadPolicy("q-head-ft"),
                             recording.with_q(q)))  # fmt: skip
        finetune_meta = result.meta["q_head_finetune"]
    if args.qhead_ft is not None:
        from hrm_agent.checkpoint import load_checkpoint

        tuned, _, _ = load_checkpoint(args.qhead_ft)
        if not _same_backbone(tuned, reasoner.model):
            raise ValueError(
                f"{args.qhead_ft} is not a Q-head fine-tune of the evaluated model: weights "
                "other than q_head differ"
            )
        q = head_q_values(tuned.q_head, recording.features)
        entries.append(Entry("q-head-ft", Path(args.qhead_ft).name,
                             QHeadPolicy(f"q-head-ft:{Path(args.qhead_ft).name}"),
                             recording.with_q(q)))  # fmt: skip
    for text in args.policies:
        algo, path = _parse_policy_arg(text)
        policy = SB3Policy.from_path(path, algo=algo, device="cpu")
        entries.append(Entry("sb3", Path(path).name, policy))

    points = run_frontier(
        recording, spec, puzzles, entries, step_cost=args.step_cost, max_cycles=args.max_cycles,
        batch_size=args.batch_size, oracle=recording, progress=args.progress,
    )  # fmt: skip

    out = Path(args.out)
    write_csv(points, out / "frontier.csv")
    title = (
        f"{spec.name}: {len(puzzles)} held-out puzzles, step cost {args.step_cost:g}, "
        f"max {args.max_cycles} cycles"
    )
    if not args.no_plot:
        plt = _pyplot()
        fig = plot_frontier(points, out / "frontier.png", title=title)
        plt.close(fig)
    summary = {
        "task": spec.name,
        "model": source,
        "n": len(puzzles),
        "step_cost": args.step_cost,
        "max_cycles": args.max_cycles,
        "record_seconds": record_seconds,
        "seconds": time.perf_counter() - started,
        "q_head_finetune": finetune_meta,
        "points": [p.row() for p in points],
    }
    write_text(out / "frontier.json", json.dumps(summary, indent=2) + "\n")
    print(title)
    print(format_table(points))
    print(f"wrote {out / 'frontier.csv'}" + ("" if args.no_plot else f", {out / 'frontier.png'}"))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``hrm frontier`` with ``argv`` (for ``python -m hrm_agent.frontier``)."""
    from hrm_agent.cli import main as cli_main

    return cli_main(["frontier", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
