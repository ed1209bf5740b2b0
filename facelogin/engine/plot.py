"""Histograms of face distances as a small SVG, drawn on the server for /admin and `flask faces evaluate --plot`.

Nothing here knows Flask. The SVG uses presentation attributes only (no <style>, no
script), so the page's Content-Security-Policy lets it render inline; role="img" with a
title and a text description makes it readable without sight.
"""

from html import escape

import numpy as np

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 28, 36
PLOT_STEP = 0.02  # bin width drawn
PLOT_MAX = 1.2  # distances past this are drawn in the last bin
COLOURS = {"impostor": "#c0392b", "genuine": "#2471a3"}


def edges():
    """Return the drawn bin edges, 0 to PLOT_MAX."""
    return np.linspace(0.0, PLOT_MAX, round(PLOT_MAX / PLOT_STEP) + 1)


def bin_distances(distances):
    """Return the number of `distances` in each drawn bin (the last also holds the larger ones)."""
    d = np.clip(np.asarray(distances, dtype=np.float64), 0.0, PLOT_MAX - PLOT_STEP / 2)
    return np.histogram(d, bins=edges())[0]


def rebin(counts, width):
    """Return histogram `counts` of bins `width` wide (from 0) as drawn bins."""
    per = round(PLOT_STEP / width)
    drawn = len(edges()) - 1
    counts = np.asarray(counts, dtype=np.int64)
    out = np.add.reduceat(counts[: per * drawn], np.arange(0, per * drawn, per)) if len(counts) else np.zeros(drawn)
    out = np.r_[out, np.zeros(drawn - len(out), np.int64)]
    out[-1] += counts[per * drawn :].sum()
    return out


def histogram_svg(series, marks, title, summary):
    """Return an SVG of distance histograms: `series` [(name, counts per drawn bin)], `marks` [(label, distance)].

    Each series is scaled to its own largest bin, so a few genuine logins show next to a
    million impostor pairs; the description gives the real counts.
    """
    e = edges()
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(d):
        return LEFT + w * min(max(d, 0.0), PLOT_MAX) / PLOT_MAX

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-labelledby="hist-title hist-desc" class="histogram">',
        f'<title id="hist-title">{escape(title)}</title>',
        f'<desc id="hist-desc">{escape(summary)}</desc>',
        f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="#ffffff" stroke="#999999"/>',
    ]
    for k, (name, counts) in enumerate(series):
        counts = np.asarray(counts, dtype=np.float64)
        top = counts.max() if len(counts) and counts.max() > 0 else 1.0
        colour = COLOURS.get(name, "#555555")
        for i, c in enumerate(counts):
            if c:
                bar = h * c / top
                parts.append(
                    f'<rect x="{x(e[i]):.1f}" y="{TOP + h - bar:.1f}" width="{x(e[i + 1]) - x(e[i]):.1f}" '
                    f'height="{bar:.1f}" fill="{colour}" fill-opacity="0.55"/>'
                )
        total = int(counts.sum())
        parts.append(
            f'<rect x="{LEFT + 8}" y="{TOP + 8 + 16 * k}" width="10" height="10" fill="{colour}" fill-opacity="0.55"/>'
            f'<text x="{LEFT + 22}" y="{TOP + 17 + 16 * k}" font-size="11" font-family="sans-serif">'
            f"{escape(name)} ({total:,})</text>"
        )
    for k, (label, d) in enumerate(marks):
        # The first mark (the configured tolerance) is labelled right of its line, a second one left.
        anchor, dx, dash = ("start", 3, "none") if k == 0 else ("end", -3, "5 3")
        parts.append(
            f'<line x1="{x(d):.1f}" y1="{TOP}" x2="{x(d):.1f}" y2="{TOP + h}" stroke="#000000" '
            f'stroke-width="1.5" stroke-dasharray="{dash}"/>'
            f'<text x="{x(d) + dx:.1f}" y="{TOP - 6}" font-size="11" font-family="sans-serif" '
            f'text-anchor="{anchor}">{escape(label)} {d:.3f}</text>'
        )
    for t in np.arange(0.0, PLOT_MAX + 1e-9, 0.2):
        parts.append(
            f'<text x="{x(t):.1f}" y="{TOP + h + 14}" font-size="10" font-family="sans-serif" '
            f'text-anchor="middle">{t:.1f}</text>'
        )
    parts.append(
        f'<text x="{LEFT + w / 2:.1f}" y="{HEIGHT - 6}" font-size="11" font-family="sans-serif" '
        f'text-anchor="middle">face distance (each series scaled to its own tallest bar)</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)
