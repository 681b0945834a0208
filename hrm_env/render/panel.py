"""The side panel: cycle count, status, and small line plots of the reasoning over the episode.

The Q plot shows the decision the model's halting rule makes after each cycle: the margin
``q_halt - q_continue`` of the Q head's two logits, against a line at 0. Above the line halting
wins (the rule ``q_halt > q_continue`` of ``hrm watch``, the examples and ``QHeadPolicy``),
below it the model thinks on. The trace plot shows the snapshot's named traces (by default mean
confidence and the fraction of cells changed). Both plots share an x axis that starts at a few
cycles and grows as the episode goes on, up to the cycle limit. The legend at the bottom names
every mark the board painters draw.

Shapes: C cycles run so far.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from hrm_env.render.viewer import Fonts, Palette, Snapshot, ViewerOptions, blend

__all__ = [
    "axis_cycles",
    "draw_margin_plot",
    "draw_panel",
    "draw_plot",
    "halt_margins",
    "legend_items",
    "margin_limit",
]

TRACE_COLOURS = [(0, 158, 115), (230, 159, 0), (204, 121, 167), (86, 180, 233), (240, 228, 66)]
TRACE_LABELS = {"confidence": "mean confidence", "changed": "cells changed"}
# Cycles the x axis shows before the episode needs more: a short solve is not squeezed into a
# corner of an axis that runs to a limit of 64.
AXIS_START = 8


def axis_cycles(cycle: int, limit: int, start: int = AXIS_START) -> int:
    """The last cycle on the plots' x axis after ``cycle`` cycles of at most ``limit``.

    The axis steps through 8, 12, 16, 24, 32, 48, 64, ... (each step 1.5x or 1.33x the last,
    so the points spread over at least two thirds of it), and never passes ``limit``.
    """
    n = max(2, start)
    while n < cycle:
        n = n * 3 // 2 if n & (n - 1) == 0 else n * 4 // 3
    return max(2, min(n, max(int(limit), 2)))


def halt_margins(q_history: Sequence[tuple[float, float]]) -> list[float]:
    """Per cycle, ``q_halt - q_continue``: above 0 the Q head's halting rule halts."""
    return [float(h) - float(c) for h, c in q_history]


def margin_limit(margins: Sequence[float]) -> float:
    """Half the height of the margin axis: a round number (1, 2, 5, 10, 20, ...) at or above
    every finite |margin|, so the decision line at 0 sits in the middle."""
    peak = max((abs(m) for m in margins if math.isfinite(m)), default=1.0)
    magnitude = 10 ** math.floor(math.log10(max(peak, 1.0)))
    return float(next(k * magnitude for k in (1, 2, 5, 10) if k * magnitude >= peak))


def draw_panel(
    pygame: ModuleType,
    surface: Any,
    rect: Any,
    snap: Snapshot,
    options: ViewerOptions,
    fonts: Fonts,
) -> None:
    """Paint the panel for ``snap`` into ``rect``."""
    s = options.scale
    x, y = rect.left, rect.top

    def text(msg: str, size: float, colour: Any = Palette.ink, bold: bool = False) -> Any:
        return fonts.get(size, bold).render(msg, True, colour)

    title = {"sudoku": "Sudoku 9x9", "sudoku-mini": "Sudoku 4x4", "maze": "Maze 30x30"}.get(
        snap.task, snap.task
    )
    surface.blit(text(f"HRM  |  {title}", 22, Palette.muted, bold=True), (x, y))
    y += round(26 * s)
    big = text(f"cycle {snap.cycle}", 46, bold=True)
    surface.blit(big, (x, y))
    small = text(f" / {snap.max_cycles}", 26, Palette.muted)
    surface.blit(
        small, (x + big.get_width(), y + big.get_height() - small.get_height() - round(3 * s))
    )
    y += big.get_height() + round(6 * s)

    if snap.halted:
        if snap.solved:
            status, colour = "halted: solved", Palette.good
        elif snap.solved is False:
            status, colour = "halted: wrong", Palette.error
        else:
            status, colour = "halted", Palette.ink
    else:
        status, colour = "thinking...", Palette.cont
    r = round(6 * s)
    pygame.draw.circle(surface, colour, (x + r, y + round(10 * s)), r)
    surface.blit(text(status, 24, colour, bold=True), (x + 3 * r, y))
    if snap.reward is not None:
        rw = text(f"reward {snap.reward:+.2f}", 20, Palette.muted)
        surface.blit(rw, (rect.right - rw.get_width(), y + round(3 * s)))
    y += round(30 * s)

    margins = halt_margins(snap.q_history)
    mean_conf = float(snap.confidence.mean()) if snap.confidence.size else 0.0
    if margins:
        says = "halt" if margins[-1] > 0 else "continue"
        stats = f"Q head says {says} ({margins[-1]:+.1f})   confidence {mean_conf:.2f}"
    else:
        stats = ""
    surface.blit(text(stats, 20, Palette.muted), (x, y))
    y += round(30 * s)

    items = legend_items(snap.task)
    legend_h = _legend_height(items, rect.width, fonts, s)
    x_max = axis_cycles(snap.cycle, snap.max_cycles)
    remaining = rect.bottom - legend_h - y
    if options.show_traces:
        q_h = round(remaining * 0.55)
        trace_h = remaining - q_h
    else:
        q_h, trace_h = remaining, 0
    draw_margin_plot(
        pygame, surface, pygame.Rect(x, y, rect.width, q_h - round(8 * s)), margins, x_max, fonts, s
    )
    y += q_h
    if options.show_traces:
        series = [
            (TRACE_LABELS.get(name, name), values, TRACE_COLOURS[i % len(TRACE_COLOURS)])
            for i, (name, values) in enumerate(snap.traces.items())
        ]
        draw_plot(
            pygame,
            surface,
            pygame.Rect(x, y, rect.width, trace_h - round(8 * s)),
            "traces",
            series,
            x_max,
            fonts,
            s,
            autoscale=True,
        )
    _draw_legend(
        pygame,
        surface,
        pygame.Rect(x, rect.bottom - legend_h, rect.width, legend_h),
        items,
        fonts,
        s,
    )


def draw_margin_plot(
    pygame: ModuleType,
    surface: Any,
    rect: Any,
    margins: Sequence[float],
    x_max: int,
    fonts: Fonts,
    s: float,
) -> None:
    """The Q plot: ``q_halt - q_continue`` per cycle, on an axis symmetric about the decision
    line at 0, with the side where halting wins shaded and labelled ``halt``, the other
    ``continue``, and each point coloured by the side it lies on."""
    limit = margin_limit(margins)
    draw_plot(
        pygame,
        surface,
        rect,
        "Q head",
        [("halt - continue", margins, Palette.ink)],
        x_max,
        fonts,
        s,
        reference=0.0,
        y_range=(-limit, limit),
        zones=(("halt", Palette.halt), ("continue", Palette.cont)),
        point_colour=lambda v: Palette.halt if v > 0 else Palette.cont,
    )


def draw_plot(
    pygame: ModuleType,
    surface: Any,
    rect: Any,
    title: str,
    series: Sequence[tuple[str, Sequence[float], Any]],
    x_max: int,
    fonts: Fonts,
    s: float,
    reference: float | None = None,
    autoscale: bool = False,
    widths: Sequence[float] | None = None,
    y_range: tuple[float, float] | None = None,
    zones: tuple[tuple[str, Any], tuple[str, Any]] | None = None,
    point_colour: Callable[[float], Any] | None = None,
) -> None:
    """A small line plot of ``series`` against cycles 1..``x_max``.

    The y axis spans [0, 1]; with ``autoscale`` it grows to a round number above the largest
    value (for traces such as residual norms that are not fractions). Series are drawn in
    order, so a later one lies on top of an earlier one where they coincide.

    Args:
        reference: a horizontal line at this value (dashed; solid with ``zones``).
        widths: line width of each series, in base line widths (default 1 for all); an
            earlier series drawn wider than a later one stays visible as its edge.
        y_range: (bottom, top) of the y axis instead of [0, 1].
        zones: (label, colour) of the side above ``reference`` and of the side below: each
            side is tinted in its colour and labelled inside the axes.
        point_colour: colour of each point's marker from its value (default: its series').
    """
    label_font = fonts.get(16)
    title_font = fonts.get(19, bold=True)
    head = title_font.render(title, True, Palette.ink)
    surface.blit(head, (rect.left, rect.top))
    # Legend after the title: a short line in each series' colour, then its name; entries
    # that do not fit wrap to further lines.
    lx = rect.left + head.get_width() + round(12 * s)
    ly = rect.top + head.get_height() // 2
    line_h = max(head.get_height(), label_font.get_height()) + round(2 * s)
    for name, _, colour in series:
        lab = label_font.render(name, True, Palette.muted)
        width = round(18 * s) + lab.get_width()
        if lx + width > rect.right and lx > rect.left + head.get_width() + round(12 * s):
            lx, ly = rect.left + round(12 * s), ly + line_h
        pygame.draw.line(surface, colour, (lx, ly), (lx + round(14 * s), ly), max(2, round(3 * s)))
        surface.blit(lab, (lx + round(18 * s), ly - lab.get_height() // 2))
        lx += width + round(12 * s)
    legend_h = ly - (rect.top + head.get_height() // 2) + head.get_height()

    bottom, top = (0.0, 1.0) if y_range is None else (float(y_range[0]), float(y_range[1]))
    if autoscale:
        peak = max((float(v) for _, values, _ in series for v in values), default=1.0)
        if math.isfinite(peak) and peak > top:
            magnitude = 10 ** math.floor(math.log10(peak))
            top = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= peak)
    ticks_y = (bottom, (bottom + top) / 2, top)
    signed = bottom < 0

    def tick_label(v: float) -> str:
        return f"{v:+g}" if signed and v else f"{v:g}"

    tick_w = max(label_font.size(tick_label(v))[0] for v in ticks_y) + round(6 * s)
    axes = pygame.Rect(
        rect.left + tick_w,
        rect.top + legend_h + round(8 * s),
        rect.width - tick_w - round(4 * s),
        rect.height - legend_h - round(8 * s) - label_font.get_height() - round(4 * s),
    )
    if axes.height < 10 or axes.width < 10:
        return
    pygame.draw.rect(surface, (248, 249, 250), axes)
    x_max = max(int(x_max), 2)

    def px(cycle: float, value: float) -> tuple[float, float]:
        v = (value - bottom) / (top - bottom) if math.isfinite(value) else 0.0
        return (
            axes.left + (cycle - 1) / (x_max - 1) * axes.width,
            axes.bottom - min(max(v, 0.0), 1.0) * axes.height,
        )

    if zones is not None and reference is not None:
        _, ref_y = px(1, reference)
        (above, above_colour), (below, below_colour) = zones
        pad = round(4 * s)
        for label, colour, y0, y1 in (
            (above, above_colour, axes.top, ref_y),
            (below, below_colour, ref_y, axes.bottom),
        ):
            band = pygame.Rect(axes.left, round(y0), axes.width, round(y1) - round(y0))
            pygame.draw.rect(surface, blend(Palette.background, colour, 0.08), band)
            lab = fonts.get(17, bold=True).render(
                label, True, blend(Palette.background, colour, 0.8)
            )
            # At the right, where the episode's points arrive last, and at the far edge from
            # the line: above it at the top, below it at the bottom.
            ty = band.top + pad if y0 == axes.top else band.bottom - pad - lab.get_height()
            if band.height > lab.get_height() + 2 * pad:
                surface.blit(lab, (axes.right - pad - lab.get_width(), ty))
    for v in ticks_y:
        _, yy = px(1, v)
        pygame.draw.line(surface, Palette.faint, (axes.left, yy), (axes.right, yy), 1)
        lab = label_font.render(tick_label(v), True, Palette.muted)
        surface.blit(lab, (axes.left - lab.get_width() - round(5 * s), yy - lab.get_height() / 2))
    if reference is not None:
        _, yy = px(1, reference)
        if zones is not None:
            # The decision line: solid, the strongest line on the axes after the data.
            pygame.draw.line(
                surface, Palette.muted, (axes.left, yy), (axes.right, yy), max(1, round(s))
            )
        else:
            _dashed(
                pygame, surface, Palette.grid_thin, (axes.left, yy), (axes.right, yy), round(5 * s)
            )
    step = max(1, math.ceil((x_max - 1) / 4 / 2) * 2) if x_max > 6 else 1
    ticks = sorted(
        {1, x_max, *range(step, x_max, step)} - {x_max - 1} if x_max > 6 else range(1, x_max + 1)
    )
    for t in ticks:
        xx, _ = px(t, 0)
        pygame.draw.line(
            surface, Palette.grid_thin, (xx, axes.bottom), (xx, axes.bottom + round(3 * s))
        )
        lab = label_font.render(str(t), True, Palette.muted)
        surface.blit(lab, (xx - lab.get_width() / 2, axes.bottom + round(4 * s)))
    pygame.draw.line(surface, Palette.grid_thin, axes.bottomleft, axes.bottomright, 1)
    pygame.draw.line(surface, Palette.grid_thin, axes.topleft, axes.bottomleft, 1)

    base_width = max(1, round(2 * s))
    base_radius = max(2.0, 3.0 * s)
    if widths is None:
        widths = [1.0] * len(series)
    if len(widths) != len(series):
        raise ValueError(f"widths must have one entry per series ({len(series)}), got {widths}")
    for (_, values, colour), factor in zip(series, widths, strict=True):
        width = max(1, round(base_width * factor))
        # Markers grow with the line, so a wide series still rings the markers of a narrower
        # one drawn over it.
        radius = base_radius + (width - base_width) / 2
        shown = [float(v) for v in values[:x_max]]
        points = [px(i + 1, v) for i, v in enumerate(shown)]
        for a, b in zip(points, points[1:], strict=False):
            pygame.draw.aaline(surface, colour, a, b, width)
        for p, v in zip(points, shown, strict=True):
            pygame.draw.aacircle(
                surface, colour if point_colour is None else point_colour(v), p, radius
            )
        if points:
            last = colour if point_colour is None else point_colour(shown[-1])
            pygame.draw.aacircle(surface, last, points[-1], radius * 1.6)


def _dashed(pygame: ModuleType, surface: Any, colour: Any, a: Any, b: Any, dash: int) -> None:
    (x0, y0), (x1, y1) = a, b
    length = math.hypot(x1 - x0, y1 - y0)
    n = max(1, int(length // (2 * dash)))
    for i in range(n):
        t0, t1 = (2 * i * dash) / length, min((2 * i + 1) * dash / length, 1.0)
        pygame.draw.line(
            surface,
            colour,
            (x0 + (x1 - x0) * t0, y0 + (y1 - y0) * t0),
            (x0 + (x1 - x0) * t1, y0 + (y1 - y0) * t1),
        )


def legend_items(task: str) -> list[tuple[str, Any, str]]:
    """(label, colour, kind) of every mark the board painter of ``task`` draws.

    Kinds: ``fill`` (a cell fill), ``outline`` (a cell outline), ``dot`` (a route dot),
    ``ring`` (a hollow ring), ``corner`` (a wrong digit with its corner mark), ``S``/``G``
    (the maze's endpoints).
    """
    from hrm_env.render.sudoku import confidence_fill

    if task == "maze":
        return [
            ("start", Palette.good, "S"),
            ("goal", Palette.goal, "G"),
            ("path", Palette.answer, "dot"),
            ("unsure", blend(Palette.background, Palette.answer, 0.35 + 0.65 * 0.3), "dot"),
            ("changed", Palette.changed, "outline"),
            ("wrong", Palette.error, "dot"),
            ("missed", Palette.grid_thin, "ring"),
        ]
    return [
        ("given", Palette.given_fill, "fill"),
        ("sure", confidence_fill(1.0), "fill"),
        ("unsure", confidence_fill(0.5), "fill"),
        ("changed", Palette.changed, "outline"),
        ("wrong", Palette.error, "corner"),
    ]


def _legend_rows(
    items: Sequence[tuple[str, Any, str]], width: int, fonts: Fonts, s: float
) -> list[list[tuple[tuple[str, Any, str], int]]]:
    """The legend's entries wrapped into rows that fit ``width``, each with its width."""
    font = fonts.get(16)
    box, gap = round(14 * s), round(5 * s)
    rows: list[list[tuple[tuple[str, Any, str], int]]] = [[]]
    used = 0
    for item in items:
        w = box + gap + font.size(item[0])[0]
        if rows[-1] and used + w > width:
            rows.append([])
            used = 0
        rows[-1].append((item, w))
        used += w + round(14 * s)
    return rows


def _legend_height(
    items: Sequence[tuple[str, Any, str]], width: int, fonts: Fonts, s: float
) -> int:
    return round(34 * s) + (len(_legend_rows(items, width, fonts, s)) - 1) * round(20 * s)


def _draw_legend(
    pygame: ModuleType,
    surface: Any,
    rect: Any,
    items: Sequence[tuple[str, Any, str]],
    fonts: Fonts,
    s: float,
) -> None:
    """Swatches explaining the board's marks, wrapped into as many rows as they need."""
    font = fonts.get(16)
    box = round(14 * s)
    rows = _legend_rows(items, rect.width, fonts, s)
    y = rect.bottom - box - round(4 * s) - (len(rows) - 1) * round(20 * s)
    for row in rows:
        x = rect.left
        for (label, colour, kind), width in row:
            _swatch(pygame, surface, pygame.Rect(x, y, box, box), colour, kind, fonts, s)
            lab = font.render(label, True, Palette.muted)
            surface.blit(lab, (x + box + round(5 * s), y + (box - lab.get_height()) // 2))
            x += width + round(14 * s)
        y += round(20 * s)


def _swatch(
    pygame: ModuleType, surface: Any, swatch: Any, colour: Any, kind: str, fonts: Fonts, s: float
) -> None:
    """One legend swatch, drawn as the painter draws that mark on the board."""
    box = swatch.width
    if kind == "fill":
        pygame.draw.rect(surface, colour, swatch)
        pygame.draw.rect(surface, Palette.grid_thin, swatch, width=1)
    elif kind == "outline":
        pygame.draw.rect(
            surface, colour, swatch, width=max(2, round(2 * s)), border_radius=round(3 * s)
        )
    elif kind == "dot":
        pygame.draw.circle(surface, colour, swatch.center, box / 2)
    elif kind == "ring":
        pygame.draw.circle(surface, colour, swatch.center, box * 0.4, width=max(1, round(1.5 * s)))
    elif kind == "corner":
        # A wrong digit: vermillion, with the painter's corner mark.
        pygame.draw.rect(surface, Palette.grid_thin, swatch, width=1)
        mark = max(3, round(box * 0.45))
        x, y = swatch.right - 1, swatch.top + 1
        pygame.draw.polygon(surface, colour, [(x - mark, y), (x, y), (x, y + mark)])
        digit = fonts.get(15, bold=True).render("5", True, colour)
        surface.blit(digit, digit.get_rect(center=swatch.center))
    else:  # "S" / "G": the maze's endpoints, a rounded square with the letter
        pygame.draw.rect(surface, colour, swatch, border_radius=round(3 * s))
        letter = fonts.get(13, bold=True).render(kind, True, Palette.background)
        surface.blit(letter, letter.get_rect(center=swatch.center))
