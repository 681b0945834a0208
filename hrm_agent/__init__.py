"""PyTorch side of hrm: the HRM model, its trainer, evaluation and halting policies."""

__version__ = "0.1.0"
