"""The report's figures as PNG bytes (matplotlib's Agg canvas; no pyplot, so no global state is touched)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

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
    """PNG of :func:`per_class_accuracy_figure`."""
    return _png(per_class_accuracy_figure(scenarios, classes, title=title))


def per_class_accuracy_figure(scenarios: dict[str, Any], classes: list[str], *, title: str) -> Figure:
    """Per-class test accuracy (%) by scenario: per class, one marker per scenario side by side, with the
    std over seeds as error bars where there is one.

    The legend sits below the axes so it hides no marker, and the y-range fits the data (error bars
    included) so that a class the attack hurt stands out against the others.
    """
    fig = Figure(figsize=(10, 4.8), layout="constrained")
    ax = fig.add_subplot()
    names = list(scenarios)
    x = np.arange(len(classes))
    width = 0.8 / max(len(names), 1)
    lows, highs = [], []
    for i, name in enumerate(names):
        s = scenarios[name]
        acc = _percent(s["per_class_accuracy"])
        err = _percent((s.get("std") or {}).get("per_class_accuracy") or [None] * len(classes))
        has_err = bool(np.isfinite(err).any())
        err = np.nan_to_num(err)
        style = dict(ls="none", marker="D" if name == "attacked" else "o", ms=5 if name in _COLORS else 4,
                     color=_color(name, i), label=name, zorder=3 if name in _COLORS else 2)
        offset = x + (i - (len(names) - 1) / 2) * width
        if has_err:
            ax.errorbar(offset, acc, yerr=err, capsize=2, elinewidth=1, **style)
        else:
            ax.plot(offset, acc, **style)
        lows.append(np.nanmin(acc - err))
        highs.append(np.nanmax(acc + err))
    lo, hi = (min(lows), max(highs)) if lows else (0.0, 100.0)
    pad = max((hi - lo) * 0.06, 0.25)
    ax.set_ylim(lo - pad, hi + pad)
    for edge in x[:-1] + 0.5:
        ax.axvline(edge, color="#dee2e6", lw=0.8, zorder=1)
    ax.set_xticks(x, [str(c) for c in classes])
    ax.set_xlim(-0.5, len(classes) - 0.5)
    ax.set_xlabel("class")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=min(len(names), 8), fontsize=8, frameon=False)
    return fig


def _percent(values: list[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v * 100 for v in values], dtype=float)


def confusion_matrices(scenarios: dict[str, Any], classes: list[str], *, title: str) -> bytes:
    """PNG of :func:`confusion_matrices_figure`."""
    return _png(confusion_matrices_figure(scenarios, classes, title=title))


def confusion_matrices_figure(scenarios: dict[str, Any], classes: list[str], *, title: str) -> Figure:
    """The reference scenario's row-normalised confusion matrix (% of each true class, log colour scale so
    the off-diagonal mass shows), then every other scenario's change against it in percentage points.

    The reference is ``clean`` (the first scenario if there is none). The changes share one diverging
    scale centred at 0, symmetric-log with a linear part of one test image's share, so that a shift of
    a few images shows beside the attack's large one; on a linear 0-100% scale every model with a
    99% diagonal looks the same.
    """
    names = list(scenarios)
    reference = "clean" if "clean" in scenarios else names[0]
    others = [n for n in names if n != reference]
    shares = {n: _row_shares(scenarios[n]["confusion_matrix"]) for n in names}
    counts = np.asarray(scenarios[reference]["confusion_matrix"], dtype=float).sum(axis=1)
    one_image = 100 / max(float(counts.max()), 1.0)  # the smallest visible change: one test image
    cols = min(4, len(names))
    rows = (len(names) + cols - 1) // cols
    fig = Figure(figsize=(3.3 * cols, 3.2 * rows + 0.6), layout="constrained")
    fig.suptitle(title)
    ticks = np.arange(len(classes))

    def panel(i: int, data: np.ndarray, name: str, **style):
        ax = fig.add_subplot(rows, cols, i + 1)
        image = ax.imshow(data, **style)
        ax.set_title(name, fontsize=10)
        ax.set_xticks(ticks, [str(c) for c in classes], fontsize=7)
        ax.set_yticks(ticks, [str(c) for c in classes], fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        return ax, image

    base = shares[reference]
    cmap = matplotlib.colormaps["magma_r"].with_extremes(bad="white")
    ax, image = panel(0, np.ma.masked_equal(base, 0.0), f"{reference} (% of true class)", cmap=cmap,
                      norm=LogNorm(vmin=one_image / 2, vmax=100))
    bar = fig.colorbar(image, ax=ax, shrink=0.8, label="% of true class (log)")
    bar.set_ticks([v for v in _decades(one_image / 2, 100) if v > 0], labels=None)
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    diffs = {n: shares[n] - base for n in others}
    if diffs:
        limit = max(max(float(np.abs(d).max()) for d in diffs.values()), 10 * one_image)
        norm = SymLogNorm(linthresh=one_image, vmin=-limit, vmax=limit, base=10)
        axes = []
        for i, name in enumerate(others, start=1):
            ax, image = panel(i, diffs[name], f"{name} − {reference} (pp)", cmap="RdBu_r", norm=norm)
            axes.append(ax)
        bar = fig.colorbar(image, ax=axes, shrink=0.8, label=f"change against {reference} (pp, symlog)")
        steps = [v for v in _decades(one_image, limit) if v > 0]
        bar.set_ticks([-v for v in reversed(steps)] + [0.0] + steps)
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:+g}" if v else "0"))
    return fig


def _decades(low: float, high: float) -> list[float]:
    """The powers of ten from ``low`` up to ``high``, for colour-bar ticks of a log scale."""
    return [10.0 ** k for k in range(int(np.ceil(np.log10(low))), int(np.floor(np.log10(high))) + 1)]


def _row_shares(matrix: list[list[float]]) -> np.ndarray:
    cm = np.asarray(matrix, dtype=float)
    return cm / np.maximum(cm.sum(axis=1, keepdims=True), 1e-12) * 100


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
    """PNG of :func:`runtime_and_f1_figure`."""
    return _png(runtime_and_f1_figure(scenarios, paper, title=title))


def runtime_and_f1_figure(scenarios: dict[str, Any], paper: dict[str, Any], *, title: str) -> Figure:
    """Left: each defense's seconds (features, detect, retrain stacked; std of the total over seeds as an
    error bar), beside the paper's run time only where ``paper`` has one. Right: detection F1 with the std
    over seeds as error bars.

    The caller passes ``paper`` empty where the paper's numbers do not compare (a training slice, another
    dataset), so its full-MNIST seconds never stand beside a different experiment's.
    """
    defenses = [n for n in scenarios if n not in ("clean", "attacked")]
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    fig.suptitle(title)
    ax = fig.add_subplot(1, 2, 1)
    x = np.arange(len(defenses))
    paper_s = np.array([paper.get(d, {}).get("runtime_s", np.nan) for d in defenses], dtype=float)
    with_paper = bool(np.isfinite(paper_s).any())
    ours_x, width = (x - 0.2, 0.4) if with_paper else (x, 0.6)
    bottom = np.zeros(len(defenses))
    for part, color in (("seconds_features", "#74c0fc"), ("seconds_detect", "#1c7ed6"), ("seconds_retrain", "#364fc7")):
        values = np.array([scenarios[d].get(part) or 0.0 for d in defenses])
        ax.bar(ours_x, values, width, bottom=bottom, color=color, label=part.replace("seconds_", ""))
        bottom += values
    spread = np.array([(scenarios[d].get("std") or {}).get("seconds") or 0.0 for d in defenses], dtype=float)
    if spread.any():
        ax.errorbar(ours_x, bottom, yerr=spread, fmt="none", ecolor="#212529", capsize=3, label="std over seeds")
    if with_paper:
        ax.bar(x + 0.2, np.nan_to_num(paper_s), 0.4, color="#ced4da", hatch="//", label="paper")
    ax.set_xticks(x, defenses, rotation=20, fontsize=8)
    ax.set_ylabel("seconds")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=5, frameon=False)  # hides no bar
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
    return fig


def pr_curves(scenarios: dict[str, Any], *, title: str) -> bytes:
    """PNG of :func:`pr_curves_figure`."""
    return _png(pr_curves_figure(scenarios, title=title))


def pr_curves_figure(scenarios: dict[str, Any], *, title: str) -> Figure:
    """Each defense's precision-recall curve (``pr_precision``: interpolated precision on an even recall
    grid from 0 to 1; the mean over seeds), with the F1 of its own threshold as a dot at its (recall,
    precision); the dashed line is the precision of flagging at random (the poison rate).

    Defenses without ``pr_precision`` (an older results file) are left out.
    """
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    fig.suptitle(title)
    ax = fig.add_subplot(1, 1, 1)
    defenses = [n for n in scenarios if n not in ("clean", "attacked")]
    rate = None
    for i, name in enumerate(defenses):
        s = scenarios[name]
        curve = s.get("pr_precision")
        if not isinstance(curve, list) or not curve:
            continue
        values = np.array([np.nan if v is None else v for v in curve], dtype=float)
        color = _PALETTE[i % len(_PALETTE)]
        auc = s.get("average_precision")
        label = name if auc is None else f"{name} (AP {auc:.3f})"
        ax.plot(np.linspace(0.0, 1.0, len(values)), values, color=color, lw=1.5, label=label)
        if s.get("recall") is not None and s.get("precision") is not None:
            ax.plot([s["recall"]], [s["precision"]], "o", color=color, ms=5,
                    label="own threshold" if not any(line.get_label() == "own threshold" for line in ax.get_lines())
                    else "_nolegend_")
        if s.get("n_poison") and s.get("n_samples"):
            rate = s["n_poison"] / s["n_samples"]
    if rate is not None:
        ax.axhline(rate, color="#868e96", ls="--", lw=1, label=f"random ({rate:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return fig


def attack_success(scenarios: dict[str, Any], *, title: str) -> bytes:
    """PNG of :func:`attack_success_figure`."""
    return _png(attack_success_figure(scenarios, title=title))


def attack_success_figure(scenarios: dict[str, Any], *, title: str) -> Figure:
    """A backdoor attack per scenario (clean, attacked, each defense after filtering and retraining): the
    attack success rate, the robust accuracy and the clean test accuracy (%) as bars side by side, the std
    over seeds as error bars; the clean model's success rate is the base rate, drawn as a dashed line.

    Scenarios without ``attack_success_rate`` (an older results file) are left out.
    """
    names = [n for n in scenarios if scenarios[n].get("attack_success_rate") is not None]
    fig = Figure(figsize=(max(6.4, 1.1 * len(names) + 2), 4.2), layout="constrained")
    fig.suptitle(title)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    bars = (("attack_success_rate", "attack success", "#c92a2a"), ("robust_accuracy", "robust accuracy", "#1c7ed6"),
            ("accuracy", "clean accuracy", "#2b8a3e"))
    for k, (key, label, color) in enumerate(bars):
        values = np.array([100 * (scenarios[n].get(key) or 0.0) for n in names], dtype=float)
        err = np.array([100 * ((scenarios[n].get("std") or {}).get(key) or 0.0) for n in names], dtype=float)
        ax.bar(x + (k - 1) * 0.27, values, 0.27, yerr=err if err.any() else None, capsize=3, color=color, label=label)
    if "clean" in names:
        ax.axhline(100 * scenarios["clean"]["attack_success_rate"], color="#868e96", ls="--", lw=1,
                   label="base rate (clean model)")
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("% of test images")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4, frameon=False)
    return fig


__all__ = ["attack_success", "attack_success_figure", "confusion_matrices", "confusion_matrices_figure",
           "feature_space", "per_class_accuracy", "per_class_accuracy_figure", "pr_curves", "pr_curves_figure",
           "runtime_and_f1", "runtime_and_f1_figure"]
