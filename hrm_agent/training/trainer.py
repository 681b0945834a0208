"""The training loop: deep supervision over segments with Q-learning halting (ACT).

The loop follows the paper (arXiv 2506.21734, Sec. "Deep supervision" and "Adaptive
computational time") and the structure of its reference code, rewritten:

* a **persistent batch** of B puzzles, each with its recurrent carry and a segment counter;
* every training step runs **one segment** for every puzzle (``model(carry, tokens)``; the
  carry comes back detached, so no gradient crosses segments), computes the loss of that
  segment against the answers and takes one AdamW step (deep supervision);
* the Q head learns when to halt: q_halt against "this segment's answer is fully correct",
  q_continue against the Q values of the *next* segment, computed under ``no_grad`` from the
  new carry (no replay buffer or target network; the batch of parallel puzzles plays that role);
* after the step each puzzle **halts** when it has run ``max_segments`` segments, or when
  ``q_halt > q_continue`` and it has run at least its minimum; the minimum is 1, except that
  with probability ``halt_exploration_prob`` (drawn once per puzzle when it enters the batch)
  it is uniform in [2, max_segments] (exploration); with ``train_halting="max"`` only the
  limit counts. Halted puzzles are replaced in place by fresh ones (new tokens, carry rows
  back to the initial state).

Distributed (``torchrun``): every rank holds the same global batch and runs the model on its
own rows; see :mod:`.world`.

This module owns the algorithm: building a run, one step, evaluation, when to save and the
loop. It must not parse flags, format logs or lay out files: :mod:`.command`, :mod:`.logs` and
:mod:`.state` do; the loss arithmetic is in :mod:`hrm_agent.losses`.

Shapes: B global batch, b = B / world_size rows per rank, S cells, L = 1 + S positions,
D hidden.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_agent.checkpoint import load_checkpoint, save_checkpoint, save_trainer_state
from hrm_agent.config import HRMConfig
from hrm_agent.evaluate import EvalResult, evaluate
from hrm_agent.losses import (
    aux_loss,
    delayed_q_continue_loss,
    hrm_loss,
    q_targets,
    segment_weights,
)
from hrm_agent.model import HRM, Carry, Outputs
from hrm_agent.sampling import Diversity, TrajectoryNoise
from hrm_agent.training.averaging import averaged_copy, start_average, update_average
from hrm_agent.training.data import Batch, PuzzleSource, draw_min_segments, held_out_sets
from hrm_agent.training.lineage import device_name, inherited_lineage
from hrm_agent.training.logs import Logger, Window
from hrm_agent.training.metrics import StepLosses, step_metrics
from hrm_agent.training.options import CHECKPOINT_STEM, TrainConfig, TrainResult
from hrm_agent.training.state import checkpoint_meta, read_state, restore, trainer_state
from hrm_agent.training.stops import StopSignals, TrainingDiverged, TrainingInterrupted
from hrm_agent.training.world import init_world, leave_world
from hrm_env.puzzles.tasks import PuzzleBatch, Task, get_task

__all__ = ["Trainer", "train"]


class Trainer:
    """One training run. Build it, then call :meth:`fit`; see the module docstring.

    Args:
        config: the run.
        resume: continue from ``out_dir``'s trainer state instead of starting afresh.
        task: the task object to draw puzzles from and score answers with (default:
            ``get_task(config.task)``); must carry the name ``config.task``. Tests inject a
            variant here (e.g. easier puzzles of the same domain).
    """

    def __init__(self, config: TrainConfig, resume: bool = False, task: Task | None = None) -> None:
        self.config = config
        self.task = get_task(config.task) if task is None else task
        if self.task.name != config.task or self.task.seq_len != get_task(config.task).seq_len:
            raise ValueError(
                f"the given task {self.task.name!r} does not match config.task {config.task!r}"
            )
        self.world, self.device, self._owns_group = init_world(config.device)
        self._fit_finished = False
        try:
            self._build(resume)
        except BaseException:
            self.close()  # leave the process group this call may have joined
            raise

    def _build(self, resume: bool) -> None:
        """The rest of ``__init__``: model, optimizer, data and state (or resumed state)."""
        config = self.config
        if config.batch_size % self.world.size:
            raise ValueError(
                f"batch_size {config.batch_size} must be divisible by the number of "
                f"processes ({self.world.size})"
            )
        self.out_dir = Path(config.out_dir)
        self.stem = self.out_dir / CHECKPOINT_STEM
        self.state_path = self.out_dir / f"{CHECKPOINT_STEM}.trainer.pt"
        if not resume and self.state_path.exists():
            raise ValueError(
                f"{self.out_dir} already holds a training run; pass --resume to continue it "
                "or choose another --out-dir"
            )
        b = config.batch_size // self.world.size
        self.rows = slice(self.world.rank * b, (self.world.rank + 1) * b)

        # Resuming reads the trainer state once, up front: it also holds the model config, so
        # a run started --init-from a checkpoint resumes without that checkpoint.
        state = read_state(self.state_path) if resume else None
        if state is not None and state.get("model_config") is not None:
            model_config = HRMConfig.from_dict(json.loads(state["model_config"]))
        else:
            model_config = config.model_config()
        # Weights from a seeded generator: every rank builds the same model without touching
        # the global torch RNG.
        init = torch.Generator().manual_seed(config.seed)
        self.model = HRM(model_config, generator=init).to(self.device)
        self.model.train()
        if self.device.type == "cuda" and model_config.compute_dtype == "float32":
            # float32 means float32: no TF32 in matmuls or convolutions either.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        if config.compile:
            self.model.enable_compile()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=config.lr,
            betas=tuple(config.betas),
            weight_decay=config.weight_decay,
        )
        self.step = 0
        self.train_seconds = 0.0
        self.cpu_seconds = 0.0
        self.last_eval: dict[str, Any] | None = None
        self.tier_evals: dict[str, dict[str, Any]] = {}
        # The runs this one continues (--init-from), oldest first: carried into every save.
        self.parent_lineage: list[dict[str, Any]] = []
        if config.init_from is not None and not resume:
            self._init_weights_from(config.init_from)
        self.ema_state: dict[str, torch.Tensor] | None = None
        if config.ema > 0:  # the average starts at the weights training starts from
            self.ema_state = start_average(self.model)

        # carry_noise: its own stream (seed, rank), so the noise leaves the data stream alone.
        self.noise_generator = torch.Generator(device=self.device).manual_seed(
            config.seed * 1_000_003 + 2 + self.world.rank
        )
        self.q_prefix: torch.Tensor | None = None  # q_bootstrap="delayed": (b, D) or None
        self.q_prefix_valid: torch.Tensor | None = None  # (b,) bool
        if state is not None:
            restore(self, state)
        else:
            # The data stream is seeded apart from the weights (seed + 1) so that the same
            # weights can be trained on different data by changing nothing else.
            self.rng = np.random.default_rng([config.seed, 1])
            self.source = PuzzleSource.create(
                self.task, config.difficulty, config.train_size, self.rng
            )
            inputs, targets = self.source.draw(self.rng, config.batch_size)
            self.batch = Batch(
                inputs=np.array(inputs, dtype=np.uint8),
                targets=np.array(targets, dtype=np.uint8),
                segments=np.zeros(config.batch_size, dtype=np.int64),
                min_segments=self._draw_min_segments(config.batch_size),
            )
            if config.train_halting == "max":
                # Staggered starts: the first batch's puzzles leave at different steps.
                max_segments = self.model.config.max_segments
                self.batch.segments[:] = (
                    np.arange(config.batch_size) * max_segments // config.batch_size
                )
            self.carry = self.model.initial_carry(b, self.device)
        self._eval_sets: dict[str, PuzzleBatch] | None = None
        self._logger: Logger | None = None

    def _init_weights_from(self, stem: str) -> None:
        """Start from a checkpoint's weights (fresh optimizer) and inherit its lineage."""
        source, _, meta = load_checkpoint(stem, map_location=self.device)
        try:
            # strict=False only so that parameters a flag adds may be missing: the max gates
            # (they start at 0, so the block computes what it did) and an auxiliary head
            # (training only, never read by the answer). Anything else must match.
            result = self.model.load_state_dict(source.state_dict(), strict=False)
        except RuntimeError as err:
            raise ValueError(f"--init-from {stem} does not fit this run's model: {err}") from err
        missing = [
            k
            for k in result.missing_keys
            if not (k.endswith("max_gate") or k.startswith("aux_head."))
        ]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"--init-from {stem} does not fit this run's model: missing {missing}, "
                f"unexpected {list(result.unexpected_keys)}"
            )
        self.parent_lineage = inherited_lineage(stem, meta)

    def lineage(self) -> list[dict[str, Any]]:
        """Every run these weights were trained in, oldest first, this one last."""
        c = self.config
        this = {
            "run": str(self.out_dir),
            "init_from": c.init_from,
            "difficulty": c.difficulty,
            "steps": self.step,
            "minutes": round(self.train_seconds / 60, 3),
            "cpu_minutes": round(self.cpu_seconds / 60, 3),
            "device": device_name(self.device),
            "threads": torch.get_num_threads(),
            "world_size": self.world.size,
        }
        return [*self.parent_lineage, this]

    # ------------------------------------------------------------------ schedule
    def lr_at(self, step: int) -> float:
        """Learning rate of the update that turns ``step`` done steps into ``step + 1``.

        Linear warmup over ``lr_warmup_steps``, then constant (the reference code's Sudoku
        setting) or a cosine decay to ``lr_min_ratio * lr`` at ``steps``."""
        c = self.config
        if step < c.lr_warmup_steps:
            return c.lr * (step + 1) / c.lr_warmup_steps
        if c.lr_schedule == "constant":
            return c.lr
        span = max(1, c.steps - c.lr_warmup_steps)
        progress = min(1.0, (step + 1 - c.lr_warmup_steps) / span)
        return c.lr * (
            c.lr_min_ratio + (1 - c.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        )

    def _draw_min_segments(self, n: int) -> np.ndarray:
        return draw_min_segments(
            self.rng, n, self.model.config.max_segments, self.config.halt_exploration_prob
        )

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, float]:
        """One segment of deep supervision for the whole batch, one optimizer update, then
        ACT halting and replacement of the halted puzzles.

        Returns:
            Metrics of this step, summed over ranks: ``loss, lm_loss, q_halt_loss,
            q_continue_loss`` (batch means), and over the puzzles that halted now: ``halted``
            (count), ``accuracy`` (cell), ``exact_accuracy``, ``q_halt_accuracy``, ``segments``;
            and the ``lr`` of the update.
        """
        tokens, labels, is_last = self._rows_of_batch()
        # Deep supervision: one segment from the (detached) carry, loss on its answer.
        carry, out = self.model(self._noisy(self.carry), tokens)
        if self.config.targets == "closest":
            labels = self._closest_labels(out)
        losses = self._losses(carry, out, tokens, labels, is_last)
        lr = self._update(losses.loss)
        halted = self._halt(out)
        metrics = self._metrics(losses, out, labels, halted, lr)
        self._advance(carry, halted)
        return metrics

    def _rows_of_batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This rank's rows of the batch on the device: tokens and answers (b, S) int64, and
        (b,) bool "this segment is the puzzle's last"."""
        rows, max_segments = self.rows, self.model.config.max_segments
        tokens = torch.from_numpy(self.batch.inputs[rows].astype(np.int64)).to(self.device)
        labels = torch.from_numpy(self.batch.targets[rows].astype(np.int64)).to(self.device)
        is_last = torch.from_numpy(self.batch.segments[rows] + 1 >= max_segments).to(self.device)
        return tokens, labels, is_last

    def _noisy(self, carry: Carry) -> Carry:
        """``carry_noise``: the carry with Gaussian noise on the rows past their first segment."""
        if not self.config.carry_noise:
            return carry
        started = torch.from_numpy(self.batch.segments[self.rows] > 0).to(self.device)
        noise = TrajectoryNoise(
            Diversity(carry_sigma=self.config.carry_noise), started, self.noise_generator
        )
        return noise.perturb(carry)

    def _closest_labels(self, out: Outputs) -> torch.Tensor:
        """``targets="closest"``: the correct answer nearest the model's own, per puzzle."""
        chosen = self.task.closest_targets(
            self.batch.inputs[self.rows],
            self.batch.targets[self.rows],
            out.logits.detach().float().cpu().numpy(),
        )
        return torch.from_numpy(chosen.astype(np.int64)).to(self.device)

    def _losses(
        self,
        carry: Carry,
        out: Outputs,
        tokens: torch.Tensor,
        labels: torch.Tensor,
        is_last: torch.Tensor,
    ) -> StepLosses:
        """The segment's losses, with q_continue's target from the chosen bootstrap."""
        c = self.config
        target = delayed = None
        if c.q_bootstrap == "next-segment":
            # Q-learning target of q_continue: the best Q value one segment later, from the
            # new carry, without gradient (reference code; no target network).
            with torch.no_grad():
                _, following = self.model(carry, tokens)
                target = q_targets(following.q_halt, following.q_continue, is_last, c.q_step_cost)
        elif self.q_prefix is None:  # the first step: no segment before it to fit
            delayed = torch.zeros_like(out.q_halt)
        else:
            # Last step's q_continue, re-read by the current head from the stored prefix
            # state, against this step's Q values.
            with self.model.autocast():
                then = self.model.q_head(self.q_prefix)[:, 1].float()
            delayed = delayed_q_continue_loss(
                then, self.q_prefix_valid, out.q_halt, out.q_continue, c.q_step_cost
            )
        # Every cell the model chooses is supervised, givens included: an answer is right only
        # if every cell is, so a cell left out of the loss would be wrong at random. Only with
        # an output mask do some cells copy their input by construction and carry no loss.
        parts = hrm_loss(
            out,
            labels,
            target,
            mask=self.model.answer_cells(tokens),
            loss=self.model.config.loss,
            reduction="none",
            lm_weight=self._segment_weights(),
        )
        total = parts.total if delayed is None else parts.total + 0.5 * delayed
        if out.aux_logits is not None:
            kind = self.model.config.aux_target
            aux = self.task.aux_labels(self.batch.inputs[self.rows], kind)
            total = total + c.aux_weight * aux_loss(
                out.aux_logits, torch.from_numpy(aux).to(self.device)
            )
        # Each rank's rows contribute their share of the *global* batch mean; summing the
        # gradients over ranks then gives exactly the 1-process gradient.
        loss = total.sum() / c.batch_size
        return StepLosses(parts, parts.q_continue if delayed is None else delayed, loss)

    def _segment_weights(self) -> torch.Tensor | None:
        """(b,) weight of each row's cell loss by its segment index; None when uniform."""
        if self.config.segment_weighting == "uniform":
            return None
        index = torch.from_numpy(self.batch.segments[self.rows] + 1).to(self.device)
        return segment_weights(index, self.model.config.max_segments, self.config.segment_weighting)

    def _update(self, loss: torch.Tensor) -> float:
        """Backpropagate, sum gradients over ranks, clip, take one AdamW step at the schedule's
        rate and move the EMA; returns that rate."""
        if not bool(torch.isfinite(loss)):
            raise TrainingDiverged(
                f"training diverged at step {self.step + 1}: the loss is {float(loss.detach())}; "
                f"the files in {self.out_dir} still hold the last save before it (try a lower "
                "--lr or --grad-clip)"
            )
        loss.backward()
        self.world.sum_gradients(self.model)
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        lr = self.lr_at(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema_state is not None:
            update_average(self.ema_state, self.model, self.config.ema)
        self.step += 1
        return lr

    def _halt(self, out: Outputs) -> np.ndarray:
        """Count the segment and decide, for the whole batch, which puzzles halt: (B,) bool.

        ACT halting is decided from this segment's Q values (before the update, as the
        reference code does), identically on every rank."""
        self.batch.segments += 1
        segs = self.batch.segments
        at_limit = segs >= self.model.config.max_segments
        if self.config.train_halting == "max":  # the Q head does not decide: no gather needed
            return at_limit
        wants_halt = self.world.gather_flags((out.q_halt > out.q_continue).detach())
        return at_limit | (wants_halt & (segs >= self.batch.min_segments))

    def _metrics(
        self, losses: StepLosses, out: Outputs, labels: torch.Tensor, halted: np.ndarray, lr: float
    ) -> dict[str, float]:
        """The step's metrics, summed over ranks (:func:`~.metrics.step_metrics`)."""
        inputs, segments = self.batch.inputs[self.rows], self.batch.segments[self.rows]
        cells = self.task.cell_mask(inputs)
        B = self.config.batch_size
        return step_metrics(
            losses, out, labels, cells, segments, halted[self.rows], self.world, B, lr
        )

    def _advance(self, carry: Carry, halted: np.ndarray) -> None:
        """Keep the new carry (and, delayed, what the next step needs to fit this segment's
        q_continue: the state the Q head read, and whether the puzzle will still be there),
        then put fresh puzzles into the halted rows."""
        self.carry = carry
        if self.config.q_bootstrap == "delayed":
            self.q_prefix = carry.z_H[:, 0].detach().clone()
            self.q_prefix_valid = torch.from_numpy(~halted[self.rows]).to(self.device)
        self._replace(halted)

    def _replace(self, halted: np.ndarray) -> None:
        """Put fresh puzzles into the halted rows (same draws on every rank)."""
        n = int(halted.sum())
        if n == 0:
            return
        inputs, targets = self.source.draw(self.rng, n)
        self.batch.inputs[halted] = inputs
        self.batch.targets[halted] = targets
        self.batch.segments[halted] = 0
        self.batch.min_segments[halted] = self._draw_min_segments(n)
        mask = torch.from_numpy(halted[self.rows]).to(self.device)
        self.carry = self.model.reset_carry(self.carry, mask)

    # ------------------------------------------------------------------ eval and saving
    def eval_model(self) -> HRM:
        """The model to evaluate and ship: a copy with the EMA weights, or the model itself."""
        if self.ema_state is None:
            return self.model
        return averaged_copy(self.model, self.ema_state)

    def eval_sets(self) -> dict[str, PuzzleBatch]:
        """The held-out puzzles, by tier; see :func:`~.data.held_out_sets`."""
        if self._eval_sets is None:
            self._eval_sets = held_out_sets(
                self.task, self.config.eval_tiers, self.config.eval_size
            )
        return self._eval_sets

    def evaluate(self) -> dict[str, EvalResult]:
        """Evaluate (the EMA weights when on) on each held-out set; see :meth:`eval_sets`."""
        model = self.eval_model()  # with EMA a fresh copy: build it once for every tier
        results = {
            tier: evaluate(model, self.task, batch) for tier, batch in self.eval_sets().items()
        }
        self.tier_evals = {tier: r.to_json("max") for tier, r in results.items()}
        self.last_eval = next(iter(self.tier_evals.values()))
        return results

    def save(self) -> None:
        """Write the checkpoint and the trainer state (collective: call on every rank)."""
        gather = self.world.gather
        carry = Carry(gather(self.carry.z_H), gather(self.carry.z_L))
        q_prefix = None
        if self.q_prefix is not None:
            q_prefix = {"state": gather(self.q_prefix), "valid": gather(self.q_prefix_valid)}
        if not self.world.is_main:
            return
        state = trainer_state(self, carry, q_prefix)
        meta = checkpoint_meta(self)
        # The trainer state first: a checkpoint on disk always has a state at least as new.
        save_trainer_state(self.state_path, state)
        save_checkpoint(self.stem, self.eval_model(), meta=meta)

    # ------------------------------------------------------------------ the loop
    def fit(self, stop_at: int | None = None) -> TrainResult:
        """Train until ``config.steps`` (or ``stop_at``, to be resumed later), evaluating,
        logging and checkpointing as configured; always ends with an evaluation and a save.

        Args:
            stop_at: stop after this many total steps (the schedule still spans ``steps``).
        """
        c = self.config
        end = c.steps if stop_at is None else min(stop_at, c.steps)
        if self._logger is None:
            self._logger = Logger(
                self.out_dir,
                start_step=self.step,
                total_steps=c.steps,
                title=f"train {self.task.name}",
                progress=c.progress,
                enabled=self.world.is_main,
            )
        logger = self._logger
        stop = StopSignals()
        try:
            window = Window()
            tick, cpu_tick = time.perf_counter(), time.process_time()
            while self.step < end:
                metrics = self.train_step()
                now = time.perf_counter()
                self.train_seconds += now - tick
                self.cpu_seconds += time.process_time() - cpu_tick
                window.add(metrics, now - tick)
                tick = now
                if self.step % c.log_every == 0 or self.step == end:
                    logger.train_row(self.step, window.summary(c.batch_size))
                    window = Window()
                logger.progress(self.step, metrics)
                eval_due = c.eval_every and self.step % c.eval_every == 0 and self.step < end
                if eval_due and self.world.is_main:
                    self._evaluate_and_log(logger)
                signum = self.world.agree_on_signal(stop.received, self.device)
                if signum is not None:
                    # Interrupted: the step in flight is done; keep everything up to it.
                    self.save()
                    raise TrainingInterrupted(signum, self.step, self.out_dir)
                if c.checkpoint_every and self.step % c.checkpoint_every == 0 and self.step < end:
                    self.save()
                tick, cpu_tick = time.perf_counter(), time.process_time()
            if self.world.is_main:
                self._evaluate_and_log(logger)
            self.save()
            self._fit_finished = True
        finally:
            stop.restore()
            logger.close()
            self._logger = None
        return TrainResult(self.step, self.stem, self.last_eval, self.train_seconds / 60)

    def _evaluate_and_log(self, logger: Logger) -> None:
        results = self.evaluate()
        logger.eval_rows(self.step, results, self.train_seconds / 60, self.cpu_seconds / 60)

    def close(self) -> None:
        """Leave the process group if this trainer joined it."""
        if self._owns_group:
            leave_world(wait_for_peers=self._fit_finished)
            self._owns_group = False


def train(
    config: TrainConfig,
    resume: bool = False,
    stop_at: int | None = None,
    task: Task | None = None,
) -> TrainResult:
    """Run (or resume) a training run to the end; see :class:`Trainer`."""
    trainer = Trainer(config, resume=resume, task=task)
    try:
        return trainer.fit(stop_at=stop_at)
    finally:
        trainer.close()
