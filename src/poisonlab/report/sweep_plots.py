"""A sweep report's figures as PNG bytes (matplotlib's Agg canvas; no pyplot, no global state)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_PALETTE = ("#1c7ed6", "#f08c00", "#7048e8", "#0c8599", "#d6336c", "#5c940d", "#495057", "#e8590c", "#2b8a3e")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def curves(group: dict[str, dict[Any, dict[str, Any]]], key: str, *, x: str, ylabel: str, title: str,
           scale: float = 1.0) -> bytes:
    """PNG of :func:`curves_figure`."""
    return _png(curves_figure(group, key, x=x, ylabel=ylabel, title=title, scale=scale))


def curves_figure(group: dict[str, dict[Any, dict[str, Any]]], key: str, *, x: str, ylabel: str, title: str,
                  scale: float = 1.0) -> Figure:
    """One line per defense: the mean of ``key`` over seeds at each x (``group[defense][x]["stats"][key]``
    is ``(mean, std)``), with a band of ± one std where the seeds give one. Points without a mean (failed
    cells) are gaps."""
    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (defense, by_x) in enumerate(group.items()):
        xs = sorted(v for v in by_x if isinstance(v, (int, float)))
        mean = np.array([np.nan if by_x[v]["stats"][key][0] is None else by_x[v]["stats"][key][0] * scale for v in xs])
        std = np.array([np.nan if by_x[v]["stats"][key][1] is None else by_x[v]["stats"][key][1] * scale for v in xs])
        color = _PALETTE[i % len(_PALETTE)]
        ax.plot(xs, mean, marker="o", ms=4, color=color, label=defense)
        if np.isfinite(std).any():
            ax.fill_between(xs, mean - np.nan_to_num(std), mean + np.nan_to_num(std), color=color, alpha=0.15, lw=0)
    ticks = sorted({v for by_x in group.values() for v in by_x if isinstance(v, (int, float))})
    if len(ticks) <= 12:
        ax.set_xticks(ticks, [f"{v:g}" for v in ticks])
    if key == "accuracy_recovered":
        ax.axhline(0, color="#868e96", lw=0.8)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=5, frameon=False)  # hides no line
    return fig


def runtime_bars(runtime: dict[str, dict[str, tuple[float | None, float | None]]], *, title: str) -> bytes:
    """Seconds per defense: features, detection and retraining stacked, the std of the total as an error bar."""
    fig = Figure(figsize=(8, 3.8), layout="constrained")
    ax = fig.add_subplot()
    names = list(runtime)
    xs = np.arange(len(names))
    bottom = np.zeros(len(names))
    for part, color in (("seconds_features", "#74c0fc"), ("seconds_detect", "#1c7ed6"), ("seconds_retrain", "#364fc7")):
        values = np.array([runtime[d][part][0] or 0.0 for d in names])
        ax.bar(xs, values, 0.6, bottom=bottom, color=color, label=part.replace("seconds_", ""))
        bottom += values
    spread = np.array([runtime[d]["seconds_defense"][1] or 0.0 for d in names])
    if spread.any():
        ax.errorbar(xs, bottom, yerr=spread, fmt="none", ecolor="#212529", capsize=3, label="std")
    ax.set_xticks(xs, names, rotation=20, fontsize=8)
    ax.set_ylabel("seconds")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4, frameon=False)
    return _png(fig)


__all__ = ["curves", "curves_figure", "runtime_bars"]
