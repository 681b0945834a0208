"""Maze board painter (30x30).

Walls dark, open cells white, start (S) green, goal (G) purple. The model's predicted path is
drawn as a route: a dot per path cell joined to its path neighbours, blue, paler where the model
is less sure. Cells whose answer changed this cycle: an orange outline. When the solution is
known and the answer is wrong: path cells off the reference path in vermillion and reference
cells the model missed as small grey rings (another shortest path than the reference one
counts as correct, and then nothing is marked).

Shapes: S = 900 cells on a 30 x 30 grid.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from hrm_env.render.viewer import Fonts, Palette, Snapshot, ViewerOptions, blend

__all__ = ["draw_board"]


def draw_board(
    pygame: ModuleType,
    surface: Any,
    rect: Any,
    snap: Snapshot,
    options: ViewerOptions,
    fonts: Fonts,
) -> None:
    """Paint the maze ``snap`` into ``rect`` of ``surface``."""
    from hrm_env.puzzles.maze import GOAL, PATH, START, WALL

    rows, cols = snap.grid_shape
    s = options.scale
    cell = rect.width / cols
    puzzle = snap.puzzle.reshape(rows, cols)
    on_path = snap.prediction.reshape(rows, cols) == PATH
    conf = snap.confidence.reshape(rows, cols)
    prev_path = None if snap.previous is None else snap.previous.reshape(rows, cols) == PATH
    ref_path = None if snap.solution is None else snap.solution.reshape(rows, cols) == PATH
    show_errors = options.show_errors and ref_path is not None and snap.solved is False

    def cell_rect(r: int, c: int) -> Any:
        x0, x1 = rect.left + round(c * cell), rect.left + round((c + 1) * cell)
        y0, y1 = rect.top + round(r * cell), rect.top + round((r + 1) * cell)
        return pygame.Rect(x0, y0, x1 - x0, y1 - y0)

    def centre(r: int, c: int) -> tuple[float, float]:
        return rect.left + (c + 0.5) * cell, rect.top + (r + 0.5) * cell

    pygame.draw.rect(surface, Palette.background, rect)
    for r, c in zip(*np.nonzero(puzzle == WALL), strict=True):
        pygame.draw.rect(surface, Palette.wall, cell_rect(r, c))

    if show_errors:
        assert ref_path is not None
        ring = max(2.0, cell * 0.22)
        for r, c in zip(*np.nonzero(ref_path & ~on_path), strict=True):
            pygame.draw.circle(
                surface, Palette.grid_thin, centre(r, c), ring, width=max(1, round(1.5 * s))
            )

    def route_colour(r: int, c: int) -> tuple[int, int, int]:
        wrong = show_errors and ref_path is not None and not ref_path[r, c]
        hue = Palette.error if wrong else Palette.answer
        # Paler where the model is less sure; never fully white so the route stays visible.
        return blend(Palette.background, hue, 0.35 + 0.65 * float(conf[r, c]))

    line_w = max(2, round(cell * 0.4))
    path_cells = list(zip(*np.nonzero(on_path), strict=True))
    for r, c in path_cells:
        for dr, dc in ((0, 1), (1, 0)):
            rr, cc = r + dr, c + dc
            # Join to path neighbours, and to the endpoints the route touches.
            if rr < rows and cc < cols and (on_path[rr, cc] or puzzle[rr, cc] in (START, GOAL)):
                pygame.draw.line(surface, route_colour(r, c), centre(r, c), centre(rr, cc), line_w)
        for dr, dc in ((0, -1), (-1, 0)):
            rr, cc = r + dr, c + dc
            if rr >= 0 and cc >= 0 and puzzle[rr, cc] in (START, GOAL):
                pygame.draw.line(surface, route_colour(r, c), centre(r, c), centre(rr, cc), line_w)
    dot = line_w / 2  # round joints: the route reads as one stroke, not beads
    for r, c in path_cells:
        pygame.draw.circle(surface, route_colour(r, c), centre(r, c), dot)

    if options.show_changes and prev_path is not None:
        width = max(1, round(2 * s))
        for r, c in zip(*np.nonzero(on_path != prev_path), strict=True):
            pygame.draw.rect(
                surface,
                Palette.changed,
                cell_rect(r, c),
                width=width,
                border_radius=round(cell * 0.2),
            )

    # Endpoints last, on top of the route that leaves them.
    label_font = fonts.get(cell / s * 1.15, bold=True)
    for token, colour, label in ((START, Palette.good, "S"), (GOAL, Palette.goal, "G")):
        for r, c in zip(*np.nonzero(puzzle == token), strict=True):
            # A little larger than a cell so they stand out, but kept inside the board.
            cr = cell_rect(r, c).inflate(round(cell * 0.4), round(cell * 0.4)).clamp(rect)
            pygame.draw.rect(surface, colour, cr, border_radius=round(cell * 0.3))
            text = label_font.render(label, True, Palette.background)
            surface.blit(text, text.get_rect(center=cr.center))

    pygame.draw.rect(surface, Palette.wall, rect.inflate(2, 2), width=max(1, round(2 * s)))
