"""PyTorch side of hrm: the HRM model, its trainer, evaluation and halting policies.

The main names (the model and its config, the env-facing reasoner, training, evaluation and the
``solve`` convenience) are exported lazily (on first attribute access), so ``import hrm_agent``
itself stays cheap and does not import torch. (The functions ``train`` and ``evaluate`` live in
the submodules of the same names, ``hrm_agent.train.train`` and
``hrm_agent.evaluate.evaluate``: a package attribute cannot be both.)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "HRM": "hrm_agent.model",
    "HRMConfig": "hrm_agent.config",
    "load_pretrained": "hrm_agent.reasoner",
    "TorchReasoner": "hrm_agent.reasoner",
    "TrainConfig": "hrm_agent.training",
    "Trainer": "hrm_agent.training",
    "EvalResult": "hrm_agent.evaluate",
    "solve": "hrm_agent.api",
}

__all__ = [
    "HRM",
    "HRMConfig",
    "TorchReasoner",
    "load_pretrained",
    "TrainConfig",
    "Trainer",
    "EvalResult",
    "solve",
    "__version__",
]

if TYPE_CHECKING:
    from hrm_agent.api import solve
    from hrm_agent.config import HRMConfig
    from hrm_agent.evaluate import EvalResult
    from hrm_agent.model import HRM
    from hrm_agent.reasoner import TorchReasoner, load_pretrained
    from hrm_agent.training import TrainConfig, Trainer


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # cache: later lookups skip this function
        return value
    raise AttributeError(f"module 'hrm_agent' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
