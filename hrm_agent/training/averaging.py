"""The exponential moving average of the weights (``TrainConfig.ema``).

Owns the average's arithmetic and the model that carries it, which evaluation and the shipped
checkpoint use. The average is a plain dict of tensors, one per parameter, so the trainer
state saves and restores it as it is (:mod:`.state`). Must not decide when to average (the
step does, after every update).
"""

from __future__ import annotations

import torch

from hrm_agent.model import HRM

__all__ = ["averaged_copy", "start_average", "update_average"]


def start_average(model: HRM) -> dict[str, torch.Tensor]:
    """An average that starts at ``model``'s current weights."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def update_average(average: dict[str, torch.Tensor], model: HRM, decay: float) -> None:
    """Move ``average`` in place towards ``model``'s weights: a <- decay * a + (1 - decay) * w."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            average[name].lerp_(p.detach(), 1.0 - decay)


def averaged_copy(model: HRM, average: dict[str, torch.Tensor]) -> HRM:
    """A fresh model like ``model`` (its buffers included) holding the averaged weights.

    A fresh module rather than a deepcopy, which compiled modules do not survive; built from a
    seeded generator so that building it leaves the global torch RNG alone.
    """
    device = next(model.parameters()).device
    shadow = HRM(model.config, generator=torch.Generator().manual_seed(0))
    shadow.load_state_dict(model.state_dict())
    shadow.to(device)
    with torch.no_grad():
        for name, p in shadow.named_parameters():
            p.copy_(average[name])
    return shadow
