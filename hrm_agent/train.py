"""The trainer's public names, where they have always been imported from.

The trainer lives in :mod:`hrm_agent.training`, one module per role; this module re-exports
what users, scripts and ``torchrun`` reach for (``python -m hrm_agent.train ...`` runs
``hrm train ...``).
"""

import sys

from hrm_agent.training.command import RECIPE_FLAGS, add_arguments, config_from_args, main, run
from hrm_agent.training.data import EVAL_SEED, parse_difficulty_mix, sample_mix
from hrm_agent.training.lineage import lineage_totals, ran_on_cpu
from hrm_agent.training.logs import EVAL_COLUMNS, TRAIN_COLUMNS
from hrm_agent.training.options import (
    CHECKPOINT_STEM,
    LR_SCHEDULES,
    MODEL_OVERRIDE_FIELDS,
    Q_BOOTSTRAPS,
    RESUMABLE_CHANGES,
    TARGET_RULES,
    TrainConfig,
    TrainResult,
)
from hrm_agent.training.state import TRAINER_STATE_FORMAT, TRAINER_STATE_VERSION
from hrm_agent.training.stops import TrainingDiverged, TrainingInterrupted
from hrm_agent.training.trainer import Trainer, train

__all__ = [
    "CHECKPOINT_STEM",
    "EVAL_COLUMNS",
    "EVAL_SEED",
    "LR_SCHEDULES",
    "MODEL_OVERRIDE_FIELDS",
    "Q_BOOTSTRAPS",
    "RECIPE_FLAGS",
    "RESUMABLE_CHANGES",
    "TARGET_RULES",
    "TRAINER_STATE_FORMAT",
    "TRAINER_STATE_VERSION",
    "TRAIN_COLUMNS",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "add_arguments",
    "config_from_args",
    "lineage_totals",
    "main",
    "parse_difficulty_mix",
    "ran_on_cpu",
    "run",
    "sample_mix",
    "train",
]

if __name__ == "__main__":
    sys.exit(main())
