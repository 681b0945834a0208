"""Write ``tests/data/training/``: seeded tiny training runs whose files pin the trainer down.

Each run is trained twice on the CPU with one thread:

* straight through to the end (``RUN/``: ``model.safetensors``, ``model.json``, ``train.csv``,
  ``eval.csv``);
* stopped at step ``MID`` as ``hrm train --stop-at`` stops (``RUN/mid/``: the trainer state
  ``model.trainer.pt`` and the two CSVs as they stood then). ``MID`` is a multiple of the run's
  ``log_every`` and ``eval_every``, so the straight run logged and evaluated at that step too.

``RUN/config.json`` holds the :class:`~hrm_agent.train.TrainConfig` fields (``out_dir`` aside),
``platform.json`` the versions and CPU kernels the files were made with.
``tests/agent/test_training_fixture.py`` reruns the configs and resumes the mid-run states with
the code of the day and asserts the same bits. The runs cover both Q bootstraps, EMA, gradient
clipping, a cosine schedule, a difficulty mix, held-out tiers, a fixed pool augmented on the fly
and closest-target supervision of mazes.

Usage: ``python tests/data/make_training_fixture.py`` (about a minute on one core). Rewrite the
files only when the trainer is meant to change what it computes.
"""

from __future__ import annotations

import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_agent.train import TrainConfig, train

HERE = Path(__file__).resolve().parent / "training"

RUNS: dict[str, dict[str, Any]] = {
    # 4x4 Sudoku, next-segment bootstrap, EMA, clipping, cosine, a mix, two held-out tiers.
    "sudoku": dict(
        config=dict(
            task="sudoku-mini",
            preset="tiny",
            overrides={
                "hidden_size": 16,
                "expansion": 2.0,
                "h_layers": 1,
                "l_layers": 1,
                "h_cycles": 1,
                "max_segments": 4,
            },
            difficulty="hard:1,medium:1",
            batch_size=8,
            lr=3e-3,
            lr_warmup_steps=4,
            lr_schedule="cosine",
            lr_min_ratio=0.1,
            grad_clip=1.0,
            steps=24,
            halt_exploration_prob=0.5,
            ema=0.9,
            eval_every=8,
            eval_size=4,
            eval_difficulty="hard,medium",
            checkpoint_every=8,
            log_every=4,
            seed=3,
            progress=False,
        ),
        mid=16,
    ),
    # 30x30 mazes, delayed bootstrap, closest targets, a fixed pool of 6 augmented puzzles.
    "maze": dict(
        config=dict(
            task="maze",
            preset="tiny",
            overrides={
                "mixer": "conv",
                "hidden_size": 8,
                "num_heads": 1,
                "h_layers": 1,
                "l_layers": 1,
                "h_cycles": 1,
                "l_cycles": 1,
                "max_segments": 3,
                "loss": "softmax",
                "gradient": "last-cycle",
            },
            difficulty="easy",
            train_size=4,
            batch_size=2,
            lr=2e-3,
            lr_warmup_steps=2,
            steps=8,
            q_bootstrap="delayed",
            targets="closest",
            eval_every=4,
            eval_size=2,
            log_every=2,
            seed=1,
            progress=False,
        ),
        mid=4,
    ),
}

KEPT = ("model.safetensors", "model.json", "train.csv", "eval.csv")


def platform_fingerprint() -> dict[str, str]:
    """What float results on the CPU depend on beyond the code: versions and SIMD kernels."""
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
    }


def make(name: str, spec: dict[str, Any], work: Path) -> None:
    dest = HERE / name
    (dest / "mid").mkdir(parents=True)
    fields = spec["config"]
    straight = TrainConfig(**fields, out_dir=str(work / name / "straight"))
    train(straight)
    for file in KEPT:
        shutil.copy(work / name / "straight" / file, dest / file)
    stopped = TrainConfig(**fields, out_dir=str(work / name / "stopped"))
    train(stopped, stop_at=spec["mid"])
    for file in ("model.trainer.pt", "train.csv", "eval.csv"):
        shutil.copy(work / name / "stopped" / file, dest / "mid" / file)
    document = {"config": fields, "mid": spec["mid"]}
    (dest / "config.json").write_text(json.dumps(document, indent=2) + "\n")


def main() -> int:
    torch.set_num_threads(1)
    shutil.rmtree(HERE, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in RUNS.items():
            make(name, spec, Path(tmp))
    (HERE / "platform.json").write_text(json.dumps(platform_fingerprint(), indent=2) + "\n")
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"wrote {HERE} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
