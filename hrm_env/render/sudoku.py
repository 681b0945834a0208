"""Sudoku board painter (9x9 and 4x4).

Givens: bold dark digits on grey. The model's answer in the other cells: blue digits on a
fill whose strength is the cell's confidence. Cells whose answer changed this cycle: an
orange outline. Wrong digits (when the solution is known): vermillion with a corner mark, so
they also read in greyscale print.

Shapes: S = n * n cells, n = 9 or 4.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from hrm_env.render.viewer import Fonts, Palette, Snapshot, ViewerOptions, blend

__all__ = ["draw_board", "confidence_fill"]


def confidence_fill(confidence: float) -> tuple[int, int, int]:
    """Cell fill for an answer held with ``confidence``: white (unsure) to light blue (sure)."""
    # Squared, and at most 55% of the full hue, so low confidence stays near white and the
    # digits keep their contrast even at full confidence.
    return blend(Palette.background, Palette.confident, 0.55 * float(confidence) ** 2)


def draw_board(
    pygame: ModuleType,
    surface: Any,
    rect: Any,
    snap: Snapshot,
    options: ViewerOptions,
    fonts: Fonts,
) -> None:
    """Paint the Sudoku ``snap`` into ``rect`` of ``surface``."""
    n = snap.grid_shape[0]
    box = math.isqrt(n)
    s = options.scale
    cell = rect.width / n
    digit_font = fonts.get(cell / s * 0.66)
    given_font = fonts.get(cell / s * 0.66, bold=True)
    puzzle = snap.puzzle.reshape(n, n)
    pred = snap.prediction.reshape(n, n)
    conf = snap.confidence.reshape(n, n)
    prev = None if snap.previous is None else snap.previous.reshape(n, n)
    sol = None if snap.solution is None else snap.solution.reshape(n, n)

    def cell_rect(r: int, c: int) -> Any:
        x0, x1 = rect.left + round(c * cell), rect.left + round((c + 1) * cell)
        y0, y1 = rect.top + round(r * cell), rect.top + round((r + 1) * cell)
        return pygame.Rect(x0, y0, x1 - x0, y1 - y0)

    mark = max(3, round(cell * 0.22))  # corner mark size
    for r in range(n):
        for c in range(n):
            cr = cell_rect(r, c)
            if puzzle[r, c]:
                pygame.draw.rect(surface, Palette.given_fill, cr)
                text = given_font.render(str(int(puzzle[r, c])), True, Palette.ink)
                surface.blit(text, text.get_rect(center=cr.center))
                if pred[r, c] != puzzle[r, c] and options.show_errors:
                    # The model failed to copy a given: a corner mark, the given stays.
                    _corner_mark(pygame, surface, cr, mark, Palette.error)
                continue
            pygame.draw.rect(surface, confidence_fill(conf[r, c]), cr)
            digit = int(pred[r, c])
            if 1 <= digit <= n:
                wrong = options.show_errors and sol is not None and digit != sol[r, c]
                colour = Palette.error if wrong else Palette.answer
                text = digit_font.render(str(digit), True, colour)
                surface.blit(text, text.get_rect(center=cr.center))
                if wrong:
                    _corner_mark(pygame, surface, cr, mark, Palette.error)
            if options.show_changes and prev is not None and pred[r, c] != prev[r, c]:
                inset = max(2, round(3 * s))
                pygame.draw.rect(
                    surface,
                    Palette.changed,
                    cr.inflate(-2 * inset, -2 * inset),
                    width=max(2, round(3 * s)),
                    border_radius=max(2, round(5 * s)),
                )

    thin, thick = max(1, round(1 * s)), max(2, round(3 * s))
    for i in range(n + 1):
        w = thick if i % box == 0 else thin
        colour = Palette.ink if i % box == 0 else Palette.grid_thin
        x = rect.left + round(i * cell)
        y = rect.top + round(i * cell)
        # Thick lines drawn centred on the cell boundary, extended to cover the corners.
        pygame.draw.line(
            surface, colour, (x, rect.top - w // 2), (x, rect.top + rect.height + (w - 1) // 2), w
        )
        pygame.draw.line(
            surface, colour, (rect.left - w // 2, y), (rect.left + rect.width + (w - 1) // 2, y), w
        )
    # Redraw the box lines so thin lines never cross over them.
    for i in range(0, n + 1, box):
        x = rect.left + round(i * cell)
        y = rect.top + round(i * cell)
        pygame.draw.line(
            surface,
            Palette.ink,
            (x, rect.top - thick // 2),
            (x, rect.top + rect.height + (thick - 1) // 2),
            thick,
        )
        pygame.draw.line(
            surface,
            Palette.ink,
            (rect.left - thick // 2, y),
            (rect.left + rect.width + (thick - 1) // 2, y),
            thick,
        )


def _corner_mark(pygame: ModuleType, surface: Any, cr: Any, size: int, colour: Any) -> None:
    """A small filled triangle in the top-right corner of a cell."""
    x, y = cr.right - 1, cr.top + 1
    pygame.draw.polygon(surface, colour, [(x - size, y), (x, y), (x, y + size)])
