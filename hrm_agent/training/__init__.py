"""Training an HRM, by role: deep supervision over segments with Q-learning halting (ACT).

============  ====================================================================
module        owns
============  ====================================================================
``options``   :class:`TrainConfig` (every option of a run, checked), its constants
``command``   ``hrm train``: flags, recipe defaults, the report
``data``      the puzzle source (a stream or a fixed pool), the batch in flight
``trainer``   :class:`Trainer`: one step, evaluation, when to save, the loop
``state``     the trainer state for ``--resume`` and the checkpoint's meta
``logs``      ``train.csv``, ``eval.csv``, TensorBoard, the progress bar
``world``     the ``torchrun`` process group and its collectives
``stops``     signals, :class:`TrainingInterrupted`, :class:`TrainingDiverged`
``lineage``   the runs a checkpoint was trained in, and their totals
============  ====================================================================

The loss arithmetic is in :mod:`hrm_agent.losses`. Files in ``out_dir``: ``model.safetensors``
+ ``model.json`` (the checkpoint; EMA weights when EMA is on), ``model.trainer.pt`` (the trainer
state: N steps + resume + N steps gives the same weights as 2N straight), ``train.csv``,
``eval.csv``, ``tb/`` (TensorBoard). :mod:`hrm_agent.train` re-exports the public names, and
``python -m hrm_agent.train`` runs the command (for ``torchrun``).
"""

from hrm_agent.training.data import parse_difficulty_mix, sample_mix
from hrm_agent.training.lineage import lineage_totals, ran_on_cpu
from hrm_agent.training.options import CHECKPOINT_STEM, TrainConfig, TrainResult
from hrm_agent.training.stops import TrainingDiverged, TrainingInterrupted
from hrm_agent.training.trainer import Trainer, train

__all__ = [
    "CHECKPOINT_STEM",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "TrainingInterrupted",
    "lineage_totals",
    "parse_difficulty_mix",
    "ran_on_cpu",
    "sample_mix",
    "train",
]
