"""pygame rendering of reasoning episodes: a viewer, one board painter per domain, ``watch``.

Nothing here imports pygame at import time; the viewer does on first draw.
"""

from hrm_env.render.viewer import Snapshot, Viewer, ViewerOptions

__all__ = ["Snapshot", "Viewer", "ViewerOptions"]
