"""The report's figures as PNG bytes (matplotlib's Agg canvas; no pyplot, so no global state is touched)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

_COLORS = {"clean": "#2b8a3e", "attacked": "#c92a2a"}
_PALETTE = ("#1c7ed6", "#f08c00", "#7048e8", "#0c8599", "#d6336c", "#5c940d", "#495057", "#e8590c")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)  # the figures lay themselves out ("constrained")
    return buffer.getvalue()


def _color(name: str, index: int) -> str:
    return _COLORS.get(name, _PALETTE[index % len(_PALETTE)])


def per_class_accuracy(scenarios: dict[str, Any], classes: list[str], *, title: str) -> bytes:
    """Per-class test accuracy (%) by scenario: one line per scenario over the classes."""
    fig = Figure(figsize=(9, 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(classes))
    for i, (name, s) in enumerate(scenarios.items()):
        acc = np.array([np.nan if a is None else a * 100 for a in s["per_class_accuracy"]])
        ax.plot(x, acc, marker="o", lw=2 if name in _COLORS else 1.3, color=_color(name, i), label=name,
                ls="--" if name == "attacked" else "-")
    ax.set_xticks(x, [str(c) for c in classes])
    ax.set_xlabel("class")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(ncol=4, fontsize=8, loc="lower left")
    return _png(fig)


def confusion_matrices(scenarios: dict[str, Any], classes: list[str], *, title: str) -> bytes:
    """Row-normalised confusion matrices (% of each true class), one panel per scenario."""
    names = list(scenarios)
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig = Figure(figsize=(3.2 * cols, 3.2 * rows + 0.4), layout="constrained")
    fig.suptitle(title)
    norm = Normalize(0, 100)
    image = None
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        cm = np.asarray(scenarios[name]["confusion_matrix"], dtype=float)
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1e-12) * 100
        image = ax.imshow(share, cmap="magma_r", norm=norm)
        ax.set_title(name, fontsize=10)
        ticks = np.arange(len(classes))
        ax.set_xticks(ticks, [str(c) for c in classes], fontsize=7)
        ax.set_yticks(ticks, [str(c) for c in classes], fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=fig.axes, shrink=0.7, label="% of true class")
    return _png(fig)


def feature_space(projection: dict[str, np.ndarray], *, title: str) -> bytes:
    """The 2-D view of the feature space, one panel per defense: clean kept, clean removed, poisons kept
    (missed) and poisons removed."""
    xy, is_poison = projection["xy"], projection["is_poison"].astype(bool)
    names = [str(n) for n in projection["defenses"]]
    panels = names or ["(no defense)"]
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 4.0 * rows + 0.4), layout="constrained")
    fig.suptitle(title)
    for i, name in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        flagged = projection["flagged"][i].astype(bool) if names else np.zeros(len(xy), dtype=bool)
        groups = ((~is_poison & ~flagged, "clean kept", "#adb5bd", "o", 4),
                  (~is_poison & flagged, "clean removed", "#1c7ed6", "x", 14),
                  (is_poison & ~flagged, "poison kept", "#e03131", "o", 10),
                  (is_poison & flagged, "poison removed", "#2f9e44", "x", 16))
        for mask, label, color, marker, size in groups:
            ax.scatter(xy[mask, 0], xy[mask, 1], s=size, c=color, marker=marker, lw=0.8,
                       label=f"{label} ({mask.sum()})")
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7, loc="best", markerscale=1.2)
    return _png(fig)


def runtime_and_f1(scenarios: dict[str, Any], paper: dict[str, Any], *, title: str) -> bytes:
    """Left: each defense's seconds (features, detect, retrain stacked) beside the paper's run time.
    Right: detection F1 with the standard deviation over seeds as error bars."""
    defenses = [n for n in scenarios if n not in ("clean", "attacked")]
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    fig.suptitle(title)
    ax = fig.add_subplot(1, 2, 1)
    x = np.arange(len(defenses))
    bottom = np.zeros(len(defenses))
    for part, color in (("seconds_features", "#74c0fc"), ("seconds_detect", "#1c7ed6"), ("seconds_retrain", "#364fc7")):
        values = np.array([scenarios[d].get(part) or 0.0 for d in defenses])
        ax.bar(x - 0.2, values, 0.4, bottom=bottom, color=color, label=part.replace("seconds_", ""))
        bottom += values
    paper_s = np.array([paper.get(d, {}).get("runtime_s", np.nan) for d in defenses], dtype=float)
    if np.isfinite(paper_s).any():
        ax.bar(x + 0.2, np.nan_to_num(paper_s), 0.4, color="#ced4da", hatch="//", label="paper")
    ax.set_xticks(x, defenses, rotation=20, fontsize=8)
    ax.set_ylabel("seconds")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    ax2 = fig.add_subplot(1, 2, 2)
    f1 = np.array([scenarios[d].get("f1") or 0.0 for d in defenses], dtype=float)
    err = np.array([((scenarios[d].get("std") or {}).get("f1") or 0.0) for d in defenses], dtype=float)
    ax2.bar(x, f1, 0.6, yerr=err if err.any() else None, capsize=4,
            color=[_PALETTE[i % len(_PALETTE)] for i in range(len(defenses))])
    ax2.set_xticks(x, defenses, rotation=20, fontsize=8)
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("detection F1")
    ax2.grid(axis="y", alpha=0.3)
    return _png(fig)


__all__ = ["confusion_matrices", "feature_space", "per_class_accuracy", "runtime_and_f1"]
