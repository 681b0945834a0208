"""What a run logs: ``train.csv``, ``eval.csv``, TensorBoard and the progress bar (rank 0 only).

Owns the columns of the two CSVs, the window of step metrics one ``train.csv`` row averages, and
the writers. Knows nothing of the trainer: it is handed numbers and results. Must not decide
when to log (the loop does) or change anything the run computes.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from pathlib import Path
from typing import Any

from hrm_agent.evaluate import EvalResult
from hrm_env.fileio import append_text, write_text

__all__ = ["EVAL_COLUMNS", "PROGRESS_LINE_SECONDS", "TRAIN_COLUMNS", "CsvLog", "Logger", "Window"]

PROGRESS_LINE_SECONDS = 30.0
"""Without a progress bar, at most one step line per this many seconds (evaluations always)."""
TENSORBOARD_HINT = (
    "hrm train: tensorboard is not installed, so the run logs to train.csv and eval.csv only "
    "(pip install 'hrm-reasoning[tensorboard]' adds it)"
)
_hinted = False  # the hint is printed once per process, however many runs it trains


class Window:
    """Metrics accumulated since the last log row."""

    def __init__(self) -> None:
        self.steps = 0
        self.seconds = 0.0
        self.sums: dict[str, float] = {}
        self.lr = 0.0

    def add(self, metrics: dict[str, float], seconds: float) -> None:
        self.steps += 1
        self.seconds += seconds
        self.lr = metrics["lr"]
        for k, v in metrics.items():
            if k != "lr":
                self.sums[k] = self.sums.get(k, 0.0) + v

    def summary(self, batch_size: int) -> dict[str, float]:
        s, n = self.sums, max(self.steps, 1)
        halted = s.get("halted", 0.0)
        per_halted = (lambda k: s[k] / halted) if halted else (lambda k: float("nan"))
        return {
            "loss": s["loss"] / n,
            "lm_loss": s["lm_loss"] / n,
            "q_halt_loss": s["q_halt_loss"] / n,
            "q_continue_loss": s["q_continue_loss"] / n,
            "accuracy": per_halted("accuracy"),
            "exact_accuracy": per_halted("exact_accuracy"),
            "q_halt_accuracy": per_halted("q_halt_accuracy"),
            "mean_segments": per_halted("segments"),
            "lr": self.lr,
            "samples_per_s": batch_size * self.steps / max(self.seconds, 1e-9),
        }


TRAIN_COLUMNS = (
    "step",
    "loss",
    "lm_loss",
    "q_halt_loss",
    "q_continue_loss",
    "accuracy",
    "exact_accuracy",
    "q_halt_accuracy",
    "mean_segments",
    "lr",
    "samples_per_s",
)
EVAL_COLUMNS = (
    "step",
    "tier",
    "minutes",
    "cpu_minutes",
    "exact_accuracy",
    "cell_accuracy",
    "q_exact_accuracy",
    "q_cell_accuracy",
    "q_mean_cycles",
    "max_cycles",
    "n",
    "path_precision",
    "path_recall",
)


class Logger:
    """CSV + TensorBoard + tqdm, on rank 0 only. ``samples_per_s`` counts puzzle-segments."""

    def __init__(
        self,
        out_dir: Path,
        start_step: int,
        total_steps: int,
        title: str,
        progress: bool,
        enabled: bool,
    ) -> None:
        """Open the logs of a run in ``out_dir`` that starts (or resumes) at ``start_step``.

        Args:
            out_dir: the run's folder (made if missing).
            start_step: steps already done; later rows of a lost run are dropped.
            total_steps: the run's ``steps``, the length of the bar.
            title: the bar's label (``train TASK``).
            progress: draw a tqdm bar (only ever on a TTY).
            enabled: False on every rank but 0: nothing is written.
        """
        self.enabled = enabled
        self.bar = None
        self.writer = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        self.train_csv = CsvLog(out_dir / "train.csv", TRAIN_COLUMNS, start_step)
        self.eval_csv = CsvLog(out_dir / "eval.csv", EVAL_COLUMNS, start_step)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(out_dir / "tb"), purge_step=start_step or None)
        except ImportError:  # an optional extra: train without it, and say how to get it
            self.writer = None
            _hint_tensorboard()
        if progress and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total_steps,
                initial=start_step,
                desc=title,
                unit="step",
                dynamic_ncols=True,
            )
        # Without a bar (no terminal, as under nohup, or --no-progress), a short line now and
        # then shows that the run is alive and how it goes.
        self.lines = self.bar is None
        self.total_steps = total_steps
        self.last_line = -math.inf

    def train_row(self, step: int, row: dict[str, float]) -> None:
        """One ``train.csv`` row (a :meth:`Window.summary`) at ``step``."""
        if not self.enabled:
            return
        self.train_csv.write({"step": step, **row})
        now = time.monotonic()
        if self.lines and (
            now - self.last_line >= PROGRESS_LINE_SECONDS or step >= self.total_steps
        ):
            self.last_line = now
            print(
                f"step {step}/{self.total_steps}: loss {row['loss']:.4f}, lr {row['lr']:.2e}, "
                f"{row['samples_per_s']:.0f} samples/s",
                file=sys.stderr,
                flush=True,
            )
        if self.writer is not None:
            for k, v in row.items():
                if math.isfinite(v):
                    self.writer.add_scalar(f"train/{k}", v, step)

    def eval_rows(
        self, step: int, results: dict[str, EvalResult], minutes: float, cpu_minutes: float
    ) -> None:
        """One ``eval.csv`` row per tier, at ``minutes`` (wall) and ``cpu_minutes`` of training."""
        for tier, result in results.items():
            self.eval_row(step, result, tier, minutes, cpu_minutes)
        if self.enabled and self.lines:
            exact = ", ".join(f"{tier} {r.exact_accuracy:.3f}" for tier, r in results.items())
            print(
                f"step {step}/{self.total_steps}: eval exact {exact}", file=sys.stderr, flush=True
            )

    def eval_row(
        self, step: int, result: EvalResult, tier: str, minutes: float, cpu_minutes: float
    ) -> None:
        if not self.enabled:
            return
        row = {
            "step": step,
            "tier": tier,
            "minutes": minutes,
            "cpu_minutes": cpu_minutes,
            "exact_accuracy": result.exact_accuracy,
            "cell_accuracy": result.cell_accuracy,
            "q_exact_accuracy": result.q_exact_accuracy,
            "q_cell_accuracy": result.q_cell_accuracy,
            "q_mean_cycles": result.q_mean_cycles,
            "max_cycles": result.max_cycles,
            "n": result.n,
            **({} if result.path is None else result.path),
        }
        self.eval_csv.write(row)
        if self.writer is not None:
            prefix = "eval" if tier == "test" else f"eval_{tier}"
            for k in ("exact_accuracy", "cell_accuracy", "q_exact_accuracy", "q_mean_cycles"):
                self.writer.add_scalar(f"{prefix}/{k}", row[k], step)
        if self.bar is not None:
            self.bar.write(
                f"step {step} ({tier}): eval exact {result.exact_accuracy:.3f} cells "
                f"{result.cell_accuracy:.3f} | Q-halt exact {result.q_exact_accuracy:.3f} "
                f"in {result.q_mean_cycles:.1f} cycles"
            )

    def progress(self, step: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{metrics['loss']:.3f}", lr=f"{metrics['lr']:.2e}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _hint_tensorboard() -> None:
    global _hinted
    if not _hinted:
        _hinted = True
        print(TENSORBOARD_HINT, file=sys.stderr, flush=True)


class CsvLog:
    """Append-only CSV; on resume rows after the resumed step (from a lost run) are dropped.

    The header (with the rows kept on resume) is written atomically and each row is one
    append that is undone on failure (``hrm_env.fileio``), so the file never ends in half a
    row; a failure is a one-line ``WriteError``.
    """

    def __init__(self, path: Path, columns: tuple[str, ...], start_step: int) -> None:
        self.path = path
        self.columns = columns
        kept: list[dict[str, str]] = []
        if start_step and path.is_file():
            with open(path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["step"]) <= start_step]
        write_text(path, self._text(kept, header=True), newline="")

    def _text(self, rows: list[dict[str, Any]], header: bool = False) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns)
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()

    def write(self, row: dict[str, Any]) -> None:
        append_text(self.path, self._text([{k: _fmt(row.get(k)) for k in self.columns}]))


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
