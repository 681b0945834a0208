"""The installed distribution: its name, its version, and its optional extras.

The project installs as ``hrm-reasoning``; the import packages are ``hrm_env`` and
``hrm_agent`` and the command is ``hrm``. Parts that need a package outside the hard
dependencies import it through :func:`require`, which names the extra that brings it.

>>> DISTRIBUTION
'hrm-reasoning'
"""

from __future__ import annotations

import importlib
import importlib.metadata
from types import ModuleType

__all__ = ["DISTRIBUTION", "distribution_version", "require"]

DISTRIBUTION = "hrm-reasoning"
"""The name the project is installed under (``pip install hrm-reasoning``)."""


def distribution_version() -> str:
    """The installed distribution's version, or the package's own when it is not installed
    (run from a source checkout through ``PYTHONPATH``)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        from hrm_agent import __version__

        return __version__


def require(module: str, extra: str, purpose: str, alternative: str | None = None) -> ModuleType:
    """Import an optional ``module``, or raise a one-line ``ImportError`` naming the extra.

    Args:
        module: the module to import (``"matplotlib"``, ``"matplotlib.figure"``).
        extra: the extra of :data:`DISTRIBUTION` that installs it (``"viz"``).
        purpose: what needs it, for the message (``"hrm analyze's figures"``).
        alternative: how to do without it, appended to the message (``"or pass --no-plot"``).

    Raises:
        ImportError: ``"<purpose> needs <package>: pip install 'hrm-reasoning[<extra>]'"``;
            ``hrm``'s commands print it as one error line.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        package = module.split(".")[0]
        hint = f"{purpose} needs {package}: pip install '{DISTRIBUTION}[{extra}]'"
        raise ImportError(hint + (f", {alternative}" if alternative else "")) from err
