"""A sweep's report from ``sweep.json`` alone: detection F1 and accuracy recovered against the poison rate
per defense (mean ± std over seeds, as tables and as curves with bands), the best defense at each rate
(named only where it beats the next by more than the spread), run time per defense, and failed cells.

``render_sweep_report(folder)`` writes ``report.md``, ``report.html`` (self-contained) and ``plots/*.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from poisonlab._io import write_bytes, write_text
from poisonlab.errors import PoisonlabError
from poisonlab.report.render import Block, Heading, Image, Paragraph, plain, to_html, to_markdown
from poisonlab.report.tables import Table
from poisonlab.results import mean_std, slug
from poisonlab.sweep_results import best_of, cell_summaries, curve_axis, load_sweep

Group = dict[str, dict[Any, dict[str, Any]]]  # defense -> x value -> cell summary


def _pm(stat: tuple[float | None, float | None], *, scale: float = 1.0, digits: int = 3, sign: bool = False) -> str:
    mean, std = stat
    if mean is None:
        return "n/a"
    text = f"{mean * scale:+.{digits}f}" if sign else f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if std is not None else "")


def _x_label(x: str | None, value: Any) -> str:
    return "all" if x is None else f"{x.split('.', 1)[1]} {value}"


def groups_of(sweep: dict[str, Any]) -> dict[str, Group]:
    """The curves' groups: cells that differ only in the curve's x and the defense, titled by the values
    they share among the grid's varying columns."""
    x = curve_axis(sweep)
    varying = [c for c in sweep["columns"] if len({repr(cell["params"].get(c)) for cell in sweep["cells"]}) > 1]
    shared = [c for c in varying if c not in (x, "defense", "attack", "dataset", "model")]
    groups: dict[str, Group] = {}
    for summary in cell_summaries(sweep):
        params = summary["params"]
        title = f"{params['attack']} on {params['dataset']} ({params['model']})" + "".join(
            f", {c}={params.get(c)}" for c in shared if params.get(c) is not None)
        group = groups.setdefault(title, {})
        group.setdefault(params["defense"], {})[params.get(x) if x else None] = summary
    return groups


def _xs(group: Group) -> list[Any]:
    values = {v for by_x in group.values() for v in by_x}
    return sorted(values, key=lambda v: (v is None, v if isinstance(v, (int, float)) else str(v)))


def metric_table(group: Group, x: str | None, key: str, title: str, *, scale: float = 1.0, digits: int = 3,
                 sign: bool = False) -> Table:
    xs = _xs(group)
    rows = [(defense, *(_pm(by_x[v]["stats"][key], scale=scale, digits=digits, sign=sign) if v in by_x else "-"
                        for v in xs)) for defense, by_x in group.items()]
    return Table(title, ("defense", *(_x_label(x, v) for v in xs)), tuple(rows))


def baseline_table(group: Group, x: str | None) -> Table:
    """Clean and attacked accuracy at each x (the same for every defense of a group)."""
    xs = _xs(group)
    rows = []
    for key, name in (("accuracy_clean", "clean"), ("accuracy_attacked", "attacked")):
        cells = []
        for v in xs:
            summary = next((by_x[v] for by_x in group.values() if v in by_x and by_x[v]["n_ok"]), None)
            cells.append(_pm(summary["stats"][key], scale=100, digits=2) if summary else "n/a")
        rows.append((name, *cells))
    return Table("Test accuracy (%) without a defense", ("model", *(_x_label(x, v) for v in xs)), tuple(rows))


def best_table(group: Group, x: str | None) -> Table:
    """The best defense at each x by accuracy and by detection F1, named only beyond the spread."""
    rows = []
    for v in _xs(group):
        cells = [_x_label(x, v)]
        for key, unit, scale in (("accuracy", "pp", 100.0), ("f1", "", 1.0)):
            points = {d: by_x[v]["stats"][key] for d, by_x in group.items() if v in by_x}
            cells.append(_best_phrase(best_of(points), unit, scale))
        rows.append(tuple(cells))
    note = ("A defense is named where its mean beats the next one's by more than the spread, "
            "sqrt(std_best² + std_next²) over seeds; with one seed there is no spread and no name.")
    return Table("Best defense", ("point", "by accuracy", "by detection F1"), tuple(rows), note)


def _best_phrase(best: dict[str, Any], unit: str, scale: float) -> str:
    if best["best"] is None:
        return "n/a"
    if best["next"] is None:
        return f"{best['best']} (alone)"
    gap = f"{best['gap'] * scale:.2f}{(' ' + unit) if unit else ''}"
    if best["named"]:
        return f"{best['best']} (+{gap} over {best['next']}, spread {best['spread'] * scale:.2f})"
    if best["spread"] is None:
        return f"none named: {best['best']} leads {best['next']} by {gap}, one seed (no spread)"
    return f"none named: {best['best']} leads {best['next']} by {gap}, within the spread {best['spread'] * scale:.2f}"


def runtime_rows(sweep: dict[str, Any]) -> dict[str, dict[str, tuple[float | None, float | None]]]:
    """Per defense, mean ± std seconds of features, detection, retraining and their sum over its rows."""
    out: dict[str, dict[str, tuple[float | None, float | None]]] = {}
    defenses = list(dict.fromkeys(cell["params"]["defense"] for cell in sweep["cells"]))
    for defense in defenses:
        rows = [r for r in sweep["rows"] if r["status"] == "ok" and r.get("defense") == defense]
        out[defense] = {k: mean_std([r.get(k) for r in rows]) if rows else (None, None)
                        for k in ("seconds_features", "seconds_detect", "seconds_retrain", "seconds_defense")}
    return out


def build_sweep_document(sweep: dict[str, Any]) -> list[Block]:
    """The sweep report as blocks, in reading order."""
    from poisonlab.report import sweep_plots  # matplotlib: heavy, and needed only once a report is drawn
    t, engine = sweep["trainings"], sweep["engine"]
    n_rows, n_failed = len(sweep["rows"]), sum(r["status"] == "failed" for r in sweep["rows"])
    doc: list[Block] = [Heading("poisonlab sweep", 1), Paragraph(
        f"{len(sweep['cells'])} cells x {len(sweep['seeds'])} seeds = {n_rows} runs on the {engine.get('engine')} "
        f"engine ({engine.get('threads_per_training')} thread(s) per training); {n_failed} failed. Trainings: "
        f"{t['needed']} needed against {t['naive']} without sharing ({t['planned']} planned; {t['ran']} trained "
        f"in the last invocation, {t['reused']} found in the stage store). poisonlab {sweep['poisonlab_version']}, "
        f"torch {sweep['torch_version']}, {sweep['machine'].get('cpu')}; created {sweep['created']}; "
        f"{sweep['timing']['total_seconds']:.0f} s.")]
    x = curve_axis(sweep)
    spread = f"mean ± std over {len(sweep['seeds'])} seeds" if len(sweep["seeds"]) > 1 else "one seed"
    for title, group in groups_of(sweep).items():
        stem = slug(title)
        doc.append(Heading(title))
        doc.append(metric_table(group, x, "f1", f"Detection F1 ({spread})"))
        doc.append(metric_table(group, x, "accuracy", f"Test accuracy after the defense (%, {spread})", scale=100,
                                digits=2))
        doc.append(metric_table(group, x, "accuracy_recovered", f"Accuracy recovered against the attacked model "
                                f"(pp, {spread})", scale=100, digits=2, sign=True))
        doc.append(baseline_table(group, x))
        doc.append(best_table(group, x))
        if x is not None:
            doc.append(Image(f"sweep-{stem}-f1.png", sweep_plots.curves(group, "f1", x=x, ylabel="detection F1",
                             title=f"Detection F1 vs {x.split('.', 1)[1]} ({title}; {spread})"),
                             f"Detection F1 against {x} per defense"))
            doc.append(Image(f"sweep-{stem}-recovered.png", sweep_plots.curves(
                group, "accuracy_recovered", x=x, ylabel="accuracy recovered (pp)", scale=100,
                title=f"Accuracy recovered vs {x.split('.', 1)[1]} ({title}; {spread})"),
                f"Accuracy recovered against {x} per defense"))
    runtime = runtime_rows(sweep)
    doc.append(Heading("Run time per defense"))
    doc.append(Table("Seconds per defense (mean ± std over its cells and seeds)",
                     ("defense", "features", "detect", "retrain", "total"),
                     tuple((d, *(_pm(v[k], digits=2) for k in ("seconds_features", "seconds_detect",
                                                               "seconds_retrain", "seconds_defense")))
                           for d, v in runtime.items()),
                     "Wall seconds of each stage where it ran; a stage shared by several cells counts for each."))
    doc.append(Image("sweep-runtime.png", sweep_plots.runtime_bars(runtime, title="Run time per defense"),
                     "Seconds per defense: features, detection and retraining"))
    failed = [r for r in sweep["rows"] if r["status"] == "failed"]
    if failed:
        doc.append(Heading("Failed cells"))
        doc.append(Table("Cells that failed", ("cell", "seed", "what", "message"),
                         tuple((str(r["cell"]), str(r["seed"]), sweep["cells"][r["cell"]].get("label", ""),
                                str(r.get("error"))) for r in failed)))
    return doc


def render_sweep_report(folder: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``plots/`` into the sweep ``folder`` from its ``sweep.json``."""
    folder = Path(folder)
    sweep = load_sweep(folder)
    try:
        doc = build_sweep_document(sweep)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if isinstance(exc, PoisonlabError):
            raise
        raise PoisonlabError(f"{folder}: malformed sweep ({type(exc).__name__}: {exc})") from None
    for block in doc:
        if isinstance(block, Image):
            write_bytes(folder / "plots" / block.name, block.png)
    write_text(folder / "report.md", to_markdown(doc))
    write_text(folder / "report.html", to_html(doc))
    return {"markdown": folder / "report.md", "html": folder / "report.html", "plots": folder / "plots"}


def sweep_summary_text(sweep: dict[str, Any]) -> str:
    """For the terminal: mean accuracy and F1 per defense at each point of every group, and the trainings."""
    x = curve_axis(sweep)
    lines = []
    for title, group in groups_of(sweep).items():
        lines.append(title)
        for table in (metric_table(group, x, "accuracy", "accuracy (%)", scale=100, digits=2),
                      metric_table(group, x, "f1", "detection F1")):
            widths = [max(len(str(r[i])) for r in (table.header, *table.rows)) for i in range(len(table.header))]
            lines.append(f"  {table.title}")
            for row in (table.header, *table.rows):
                lines.append("    " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                                for i, (c, w) in enumerate(zip(row, widths))))
    t = sweep["trainings"]
    failed = sum(r["status"] == "failed" for r in sweep["rows"])
    lines.append(plain(f"{len(sweep['rows'])} runs, {failed} failed; {t['needed']} trainings against "
                       f"{t['naive']} without sharing ({t['ran']} trained now, {t['reused']} reused)."))
    return "\n".join(lines)


__all__ = ["build_sweep_document", "groups_of", "render_sweep_report", "sweep_summary_text"]
