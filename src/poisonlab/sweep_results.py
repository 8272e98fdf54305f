"""The sweep table contract: ``sweep.json`` and ``sweep.csv`` of ``poisonlab sweep``, their rows, the mean
and spread over seeds, and the best defense at a grid point.

Written by :mod:`poisonlab.experiment.sweep`, read by :mod:`poisonlab.report` and by users; like
:mod:`poisonlab.results` it needs NumPy only, so a sweep's report can be re-made anywhere from the JSON.

``sweep.csv`` has one row per cell and seed, in cell order then seed order. Columns: ``cell`` (its index),
every grid parameter (:data:`SweepSpec.columns <poisonlab.experiment.grid.SweepSpec>`: ``dataset``,
``model``, other axes, ``attack`` (label), ``attack_name``, ``attack.<param>``, ``defense``), ``seed``,
``status`` (``ok`` or ``failed``), then :data:`METRICS`, :data:`LISTS` (JSON lists, one value per class),
:data:`SECONDS` and ``error`` (a failed cell's message). Fractions are in 0..1; an empty field is a value
that does not apply (a failed cell's metrics, an attack parameter another attack has, ``roc_auc`` of a
defense that removed nothing, the attack success rates of an attack that is not a backdoor: ``attack_success_rate``
after the defense, ``_clean`` the base rate, ``_attacked`` without a defense, and ``robust_accuracy``
after the defense; see :mod:`poisonlab.results`). Floats are written in full (``repr``), so two sweeps' tables compare exactly.

``sweep.json``::

    {"format": "poisonlab-sweep/1", "poisonlab_version", "created", "torch_version", "machine",
     "engine": {"engine": "local" | "ray", "threads_per_training", ...},
     "spec": {"sweep": the file's tables, "seeds", "columns"},
     "columns": [grid parameter columns], "seeds": [...],
     "cells": [{"cell", "params": {column: value}, "label"}],
     "rows": [{the CSV's fields, typed: numbers, lists, null}],
     "trainings": {"naive" (3 per cell and seed: clean, attacked, retrained), "planned" (distinct trainings
                   the grid implies), "needed" (distinct trainings it took: two defenses that keep the same
                   samples share one), "ran" (trained by this invocation), "reused" (found in the store)},
     "timing": {"total_seconds"}}
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from poisonlab._io import write_text
from poisonlab.errors import PoisonlabError
from poisonlab.results import mean_std

SWEEP_FORMAT = "poisonlab-sweep/1"
METRICS: tuple[str, ...] = ("accuracy", "accuracy_clean", "accuracy_attacked", "accuracy_recovered", "precision",
                            "recall", "f1", "roc_auc", "removed", "poisons_removed", "clean_removed", "poisons_kept",
                            "n_poison", "n_train", "target_success_rate", "attack_success_rate",
                            "attack_success_rate_clean", "attack_success_rate_attacked", "robust_accuracy")
LISTS: tuple[str, ...] = ("per_class_accuracy", "per_class_accuracy_attacked")
# a defense's own time is features + detect + retrain ("seconds_defense")
SECONDS: tuple[str, ...] = ("seconds_clean", "seconds_attack", "seconds_attacked", "seconds_features",
                            "seconds_detect", "seconds_retrain", "seconds_defense")
STATUSES = ("ok", "failed")


def csv_columns(param_columns: list[str] | tuple[str, ...]) -> list[str]:
    """The header of ``sweep.csv`` for a sweep with these grid parameter columns."""
    return ["cell", *param_columns, "seed", "status", *METRICS, *LISTS, *SECONDS, "error"]


def _field(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def csv_text(rows: list[dict[str, Any]], param_columns: list[str] | tuple[str, ...]) -> str:
    """``sweep.csv``'s content for ``rows`` (the typed rows of ``sweep.json``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = csv_columns(param_columns)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_field(row.get(c)) for c in columns])
    return buffer.getvalue()


def write_csv(path: str | os.PathLike, rows: list[dict[str, Any]], param_columns: list[str] | tuple[str, ...]) -> None:
    write_text(path, csv_text(rows, param_columns))


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """``sweep.csv`` as a list of ``{column: text}`` rows."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PoisonlabError(f"{path}: cannot read the sweep table: {exc}") from None


def numbers_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without what legitimately changes between two runs of one sweep (the seconds columns)."""
    return [{k: v for k, v in row.items() if not k.startswith("seconds")} for row in rows]


def load_sweep(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``sweep.json`` (a sweep folder or the file itself); a one-line
    :class:`PoisonlabError` for a missing or unreadable file, another format, or a broken layout."""
    path = Path(path)
    if path.is_dir():
        path = path / "sweep.json"
    try:
        sweep = json.loads(path.read_text())
    except FileNotFoundError:
        raise PoisonlabError(f"{path}: no sweep.json here; run 'poisonlab sweep' first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PoisonlabError(f"{path}: cannot read the sweep: {exc}") from None
    found = sweep.get("format") if isinstance(sweep, dict) else None
    if found != SWEEP_FORMAT:
        what = f"format {found!r}" if isinstance(found, str) else "no 'format' tag"
        raise PoisonlabError(f"{path}: not a poisonlab sweep file ({what}; expected {SWEEP_FORMAT!r})")
    problem = _structure_problem(sweep)
    if problem:
        raise PoisonlabError(f"{path}: malformed sweep ({problem})")
    return sweep


def _structure_problem(sweep: dict[str, Any]) -> str | None:
    for key, kind in (("columns", list), ("seeds", list), ("cells", list), ("rows", list), ("trainings", dict),
                      ("engine", dict)):
        if not isinstance(sweep.get(key), kind):
            return f"{key!r} must be a {kind.__name__}"
    n_cells = len(sweep["cells"])
    for i, cell in enumerate(sweep["cells"]):
        if not isinstance(cell, dict) or cell.get("cell") != i or not isinstance(cell.get("params"), dict):
            return f"'cells[{i}]' must hold its index and 'params'"
    for i, row in enumerate(sweep["rows"]):
        if not isinstance(row, dict) or not isinstance(row.get("cell"), int) or not 0 <= row["cell"] < n_cells:
            return f"'rows[{i}].cell' must be a cell index"
        if row.get("status") not in STATUSES:
            return f"'rows[{i}].status' must be one of {', '.join(STATUSES)}"
        for key in (*METRICS, *SECONDS):
            value = row.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                return f"'rows[{i}].{key}' must be a number or null"
    return None


# ----------------------------------------------------------------------------------------------- seeds

def cell_summaries(sweep: dict[str, Any]) -> list[dict[str, Any]]:
    """Per cell: its params, ``n_ok`` / ``n_failed`` seeds, the failures' messages, and for every metric
    and seconds column ``(mean, std)`` over the seeds that finished (std ``None`` with one seed, as in
    :func:`poisonlab.results.mean_std`)."""
    out = []
    for cell in sweep["cells"]:
        rows = [r for r in sweep["rows"] if r["cell"] == cell["cell"]]
        ok = [r for r in rows if r["status"] == "ok"]
        stats = {k: mean_std([r.get(k) for r in ok]) if ok else (None, None) for k in (*METRICS, *SECONDS)}
        out.append({"cell": cell["cell"], "params": cell["params"], "n_ok": len(ok), "n_failed": len(rows) - len(ok),
                    "errors": [r.get("error") for r in rows if r["status"] == "failed"], "stats": stats})
    return out


def curve_axis(sweep: dict[str, Any]) -> str | None:
    """The x of the sweep's curves: ``attack.rate`` where it varies, else the first numeric attack parameter
    that varies; ``None`` when no attack parameter does."""
    candidates = [c for c in sweep["columns"] if c.startswith("attack.")]
    candidates.sort(key=lambda c: c != "attack.rate")
    for column in candidates:
        values = {cell["params"].get(column) for cell in sweep["cells"]}
        numbers = {v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if len(numbers) > 1:
            return column
    return None


def best_of(points: dict[str, tuple[float | None, float | None]], *, higher: bool = True) -> dict[str, Any]:
    """The best of ``{name: (mean, std)}`` and whether it beats the next by more than the spread.

    ``spread`` is ``sqrt(std_best**2 + std_next**2)`` (the seeds' spread of the difference); it is unknown
    (``None``) with one seed, and then no winner is named. Returns ``{"best", "next", "gap", "spread",
    "named"}`` (``best`` is ``None`` when no point has a mean).
    """
    ranked = sorted(((m, s, n) for n, (m, s) in points.items() if m is not None and math.isfinite(m)),
                    key=lambda t: -t[0] if higher else t[0])
    if not ranked:
        return {"best": None, "next": None, "gap": None, "spread": None, "named": False}
    best = ranked[0]
    if len(ranked) == 1:
        return {"best": best[2], "next": None, "gap": None, "spread": best[1], "named": False}
    second = ranked[1]
    gap = abs(best[0] - second[0])
    spread = math.hypot(best[1], second[1]) if best[1] is not None and second[1] is not None else None
    return {"best": best[2], "next": second[2], "gap": gap, "spread": spread,
            "named": spread is not None and gap > spread}


__all__ = ["LISTS", "METRICS", "SECONDS", "SWEEP_FORMAT", "best_of", "cell_summaries", "csv_columns", "csv_text",
           "curve_axis", "load_sweep", "numbers_of", "read_csv", "write_csv"]
