"""The side panel: cycle count, status, and small line plots of the reasoning over the episode.

The Q plot shows the Q head's halt and continue values as probabilities (sigmoid of the
logits, the scale the head is trained on) against the cycle; the trace plot shows the
snapshot's named traces (by default mean confidence and the fraction of cells changed).

Shapes: C cycles run so far.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from hrm_env.render.viewer import Fonts, Palette, Snapshot, ViewerOptions, blend

__all__ = ["draw_panel", "draw_plot"]

TRACE_COLOURS = [(0, 158, 115), (230, 159, 0), (204, 121, 167), (86, 180, 233), (240, 228, 66)]
TRACE_LABELS = {"confidence": "mean confidence", "changed": "cells changed"}
# Line width of the Q plot's continue series, under the halt line, in base line widths.
Q_UNDERLAY_WIDTH = 2.0


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


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

    halt_p = [_sigmoid(h) for h, _ in snap.q_history]
    cont_p = [_sigmoid(c) for _, c in snap.q_history]
    mean_conf = float(snap.confidence.mean()) if snap.confidence.size else 0.0
    stats = f"P(halt) {halt_p[-1]:.2f}   confidence {mean_conf:.2f}" if halt_p else ""
    surface.blit(text(stats, 20, Palette.muted), (x, y))
    y += round(30 * s)

    legend_h = round(34 * s)
    remaining = rect.bottom - legend_h - y
    if options.show_traces:
        q_h = round(remaining * 0.55)
        trace_h = remaining - q_h
    else:
        q_h, trace_h = remaining, 0
    draw_plot(
        pygame,
        surface,
        pygame.Rect(x, y, rect.width, q_h - round(8 * s)),
        "Q head",
        # Halt is drawn last, on top, so it is never hidden; continue goes under it in a wider
        # line, so where the two probabilities coincide the halt line shows with a
        # continue-coloured edge instead of one line hiding the other.
        [("continue", cont_p, Palette.cont), ("halt", halt_p, Palette.halt)],
        snap.max_cycles,
        fonts,
        s,
        reference=0.5,
        widths=(Q_UNDERLAY_WIDTH, 1.0),
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
            snap.max_cycles,
            fonts,
            s,
            autoscale=True,
        )
    _draw_legend(
        pygame,
        surface,
        pygame.Rect(x, rect.bottom - legend_h, rect.width, legend_h),
        snap,
        fonts,
        s,
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
) -> None:
    """A small line plot of ``series`` against cycles 1..``x_max``.

    The y axis spans [0, 1]; with ``autoscale`` it grows to a round number above the largest
    value (for traces such as residual norms that are not fractions). Series are drawn in
    order, so a later one lies on top of an earlier one where they coincide.

    Args:
        widths: line width of each series, in base line widths (default 1 for all); an
            earlier series drawn wider than a later one stays visible as its edge.
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

    top = 1.0
    if autoscale:
        peak = max((float(v) for _, values, _ in series for v in values), default=1.0)
        if math.isfinite(peak) and peak > 1.0:
            magnitude = 10 ** math.floor(math.log10(peak))
            top = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= peak)
    ticks_y = (0.0, top / 2, top)
    tick_w = max(label_font.size(f"{v:g}")[0] for v in ticks_y) + round(6 * s)
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
        v = min(max(value / top, 0.0), 1.0) if math.isfinite(value) else 0.0
        return (
            axes.left + (cycle - 1) / (x_max - 1) * axes.width,
            axes.bottom - v * axes.height,
        )

    for v in ticks_y:
        _, yy = px(1, v)
        pygame.draw.line(surface, Palette.faint, (axes.left, yy), (axes.right, yy), 1)
        lab = label_font.render(f"{v:g}", True, Palette.muted)
        surface.blit(lab, (axes.left - lab.get_width() - round(5 * s), yy - lab.get_height() / 2))
    if reference is not None:
        _, yy = px(1, reference)
        _dashed(pygame, surface, Palette.grid_thin, (axes.left, yy), (axes.right, yy), round(5 * s))
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
        points = [px(i + 1, float(v)) for i, v in enumerate(values[:x_max])]
        for a, b in zip(points, points[1:], strict=False):
            pygame.draw.aaline(surface, colour, a, b, width)
        for p in points:
            pygame.draw.aacircle(surface, colour, p, radius)
        if points:
            pygame.draw.aacircle(
                surface, blend(colour, Palette.background, 0.0), points[-1], radius * 1.6
            )


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


def _draw_legend(
    pygame: ModuleType, surface: Any, rect: Any, snap: Snapshot, fonts: Fonts, s: float
) -> None:
    """Swatches explaining the board's colours."""
    from hrm_env.render.sudoku import confidence_fill

    font = fonts.get(16)
    box = round(14 * s)
    if snap.task == "maze":
        items = [
            ("path", Palette.answer, "dot"),
            ("changed", Palette.changed, "outline"),
            ("off reference", Palette.error, "dot"),
        ]
    else:
        items = [
            ("given", Palette.given_fill, "fill"),
            ("sure", confidence_fill(1.0), "fill"),
            ("changed", Palette.changed, "outline"),
            ("wrong", Palette.error, "text"),
        ]
    x = rect.left
    y = rect.bottom - box - round(4 * s)
    for label, colour, kind in items:
        swatch = pygame.Rect(x, y, box, box)
        if kind == "fill":
            pygame.draw.rect(surface, colour, swatch)
            pygame.draw.rect(surface, Palette.grid_thin, swatch, width=1)
        elif kind == "outline":
            pygame.draw.rect(
                surface, colour, swatch, width=max(2, round(2 * s)), border_radius=round(3 * s)
            )
        elif kind == "dot":
            pygame.draw.circle(surface, colour, swatch.center, box / 2)
        else:
            pygame.draw.rect(surface, colour, swatch, border_radius=round(3 * s))
        lab = font.render(label, True, Palette.muted)
        surface.blit(lab, (x + box + round(5 * s), y + (box - lab.get_height()) // 2))
        x += box + round(5 * s) + lab.get_width() + round(14 * s)
