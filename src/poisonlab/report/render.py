"""Render a run folder's ``results.json`` into ``report.md``, ``report.html`` and ``plots/*.png``.

The report reads only ``results.json`` and the files it references inside the run folder (the feature-space
projections), so it can be re-made at any time without training. The HTML is one self-contained file:
inline CSS, images embedded as base64 ``data:`` URLs, no scripts, no external URLs.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from poisonlab._io import write_bytes, write_text
from poisonlab.errors import PoisonlabError
from poisonlab.results import load_results, slug
from poisonlab.report.paper import paper_comparison
from poisonlab.report.tables import (Table, backdoor_table, defenses_of, detection_table, figure2_table,
                                     figure3_table, is_backdoor, n_seeds, paper_applies, paper_numbers, runtime_table,
                                     stage_timing_table, summary_table, timing_sentence, verdict)


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Image:
    name: str  # file name under plots/
    png: bytes
    alt: str


Block = Union[Heading, Paragraph, Table, Image]


def build_document(results: dict[str, Any], run_dir: Path) -> list[Block]:
    """The report as a list of blocks, in reading order."""
    doc: list[Block] = [Heading("poisonlab report", 1)]
    ds, cfg = results["dataset"], results["config"]
    doc.append(Paragraph(
        f"Dataset {ds['name']} ({ds['n_train']} train / {ds['n_test']} test), model {cfg['model']}, epochs: "
        f"clean {cfg['clean_epochs']}, attacked {cfg['attacked_epochs']}, retrain {cfg['retrain_epochs']}; "
        f"features {cfg['features']}; seeds {results['seeds']}. poisonlab {results['poisonlab_version']}, "
        f"torch {results['torch_version']}, {results['machine'].get('cpu')}, "
        f"{results['machine'].get('threads')} threads, {results['machine'].get('precision')}; "
        f"created {results['created']}."))
    attacks = [results["primary_attack"]] + [a for a in results["attacks"] if a != results["primary_attack"]]
    for attack in attacks:
        doc += _attack_section(results, attack, run_dir)
    doc.append(Heading("Time"))
    doc.append(stage_timing_table(results))
    return doc


def _attack_section(results: dict[str, Any], attack: str, run_dir: Path) -> list[Block]:
    from poisonlab.report import plots  # matplotlib: heavy, and needed only once a report is drawn
    entry = results["attacks"][attack]
    scenarios = entry["scenarios"]
    classes = results["dataset"]["classes"]
    stem = slug(attack)
    info = entry["attack"]
    params = ", ".join(f"{k}={v}" for k, v in info["params"].items()) or "defaults"
    with_paper = paper_applies(results, attack)
    primary = (" (primary: compared with the paper)" if with_paper else
               " (primary)" if attack == results["primary_attack"] else "")
    blocks: list[Block] = [
        Heading(f"Attack: {attack}{primary}"),
        Paragraph(f"{info['name']} with {params}: {info['n_poison']} poisoned training samples "
                  f"({info['rate_of_train'] * 100:.2f}% of the training set)."),
        summary_table(results, attack),
    ]
    blocks += [Paragraph(line) for line in verdict(results, attack)]
    if is_backdoor(results, attack):
        blocks.append(backdoor_table(results, attack))
        spread_asr = f", mean ± std over {n_seeds(results)} seeds" if n_seeds(results) > 1 else ""
        blocks.append(Image(f"{slug(attack)}-attack-success.png",
                            plots.attack_success(scenarios, title=f"Backdoor success per defense ({attack}"
                                                                  f"{spread_asr})"),
                            f"Attack success rate, robust and clean accuracy per scenario under {attack}"))
    comparison = paper_comparison(results, attack)
    if comparison:
        blocks.append(Heading("Comparison with the paper", 3))
        blocks += [Paragraph(line) for line in comparison]
    blocks.append(figure2_table(results, attack))
    blocks += [figure3_table(results, attack, d) for d in defenses_of(results, attack)]
    blocks += [detection_table(results, attack), runtime_table(results, attack)]
    spread = f", mean ± std over {n_seeds(results)} seeds" if n_seeds(results) > 1 else ""
    blocks.append(Image(f"{stem}-per-class-accuracy.png",
                        plots.per_class_accuracy(scenarios, classes,
                                                 title=f"Per-class accuracy ({attack}{spread})"),
                        f"Per-class test accuracy by scenario under {attack}"))
    blocks.append(Image(f"{stem}-confusion.png",
                        plots.confusion_matrices(scenarios, classes, title=f"Confusion matrices ({attack})"),
                        f"Clean model's confusion matrix and each scenario's change against it under {attack}"))
    if defenses_of(results, attack):
        paper = paper_numbers()["scenarios"] if with_paper else {}
        blocks.append(Image(f"{stem}-runtime-f1.png",
                            plots.runtime_and_f1(scenarios, paper, title=f"Run time and detection F1 ({attack})"),
                            f"Defense run times and detection F1 under {attack}"))
    if any(isinstance(scenarios[d].get("pr_precision"), list) for d in defenses_of(results, attack)):
        mean_over = f", mean over {n_seeds(results)} seeds" if n_seeds(results) > 1 else ""
        blocks.append(Image(f"{stem}-pr-curves.png",
                            plots.pr_curves(scenarios, title=f"Precision-recall of the scores ({attack}"
                                                             f"{mean_over})"),
                            f"Precision-recall curve of each defense's scores under {attack}"))
    for seed, rel in sorted(entry.get("projections", {}).items())[:1]:
        projection = _read_projection(run_dir, rel)
        blocks.append(Image(f"{stem}-feature-space-seed{seed}.png",
                            plots.feature_space(projection, title=f"Feature space, PCA-2 of the attacked model's "
                                                                  f"activations ({attack}, seed {seed})"),
                            f"2-D view of the feature space per defense under {attack}"))
    return blocks


def _read_projection(run_dir: Path, rel: str) -> dict[str, np.ndarray]:
    path = (run_dir / rel).resolve()
    if run_dir.resolve() not in path.parents:
        raise PoisonlabError(f"{rel}: projection path leaves the run folder")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise PoisonlabError(f"{path}: cannot read projection: {exc}") from None


# ------------------------------------------------------------------------------------------ markdown

def to_markdown(doc: list[Block]) -> str:
    out: list[str] = []
    for block in doc:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}\n")
        elif isinstance(block, Paragraph):
            out.append(block.text + "\n")
        elif isinstance(block, Table):
            out.append(f"**{block.title}**\n")
            out.append("| " + " | ".join(_md_cell(c) for c in block.header) + " |")
            out.append("|" + "|".join("---" if i == 0 else "--:" for i in range(len(block.header))) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append(f"\n{block.note}\n" if block.note else "")
        elif isinstance(block, Image):
            out.append(f"![{block.alt}](plots/{block.name})\n")
    return "\n".join(out).rstrip() + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


# ------------------------------------------------------------------------------------------ HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1150px;color:#212529;
     padding:0 1em;line-height:1.45}
h1{border-bottom:2px solid #dee2e6;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #dee2e6}
table{border-collapse:collapse;margin:.6em 0 .2em;font-size:13px;max-width:100%}
caption{text-align:left;font-weight:600;padding:.3em 0;white-space:nowrap}
th,td{border:1px solid #dee2e6;padding:3px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{background:#f1f3f5;white-space:normal;vertical-align:bottom}tr:nth-child(even) td{background:#f8f9fa}
p.note{color:#6c757d;font-size:12px;margin-top:0}img{max-width:100%;display:block;margin:1em 0}
code{white-space:nowrap;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em;
     background:#f1f3f5;padding:0 .2em;border-radius:3px}
"""


_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    """Escaped text with Markdown's `code` spans as <code>, which the CSS keeps on one line (an option such
    as --seeds must not break at its hyphens)."""
    return _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", html.escape(text, quote=False))


def plain(text: str) -> str:
    """Text for the terminal: code spans without their backticks."""
    return _CODE.sub(lambda m: m.group(1), text)


def to_html(doc: list[Block]) -> str:
    body: list[str] = []
    for block in doc:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Table):
            rows = ["<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in block.header) + "</tr>"]
            rows += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block.rows]
            body.append(f"<table><caption>{_inline(block.title)}</caption>{''.join(rows)}</table>")
            if block.note:
                body.append(f'<p class="note">{_inline(block.note)}</p>')
        elif isinstance(block, Image):
            data = base64.b64encode(block.png).decode("ascii")
            body.append(f'<img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">')
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>poisonlab report</title>"
            f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")


# ------------------------------------------------------------------------------------------ files

def render_report(run_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``plots/*.png`` into ``run_dir`` from its ``results.json``.

    Returns the paths written: ``{"markdown": ..., "html": ..., "plots": folder}``.
    """
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    try:
        doc = build_document(results, run_dir)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if isinstance(exc, PoisonlabError):
            raise
        # load_results checks the layout a report needs; anything it let through is still the file's fault
        raise PoisonlabError(f"{run_dir}: malformed results ({type(exc).__name__}: {exc})") from None
    for block in doc:
        if isinstance(block, Image):
            write_bytes(run_dir / "plots" / block.name, block.png)
    write_text(run_dir / "report.md", to_markdown(doc))
    write_text(run_dir / "report.html", to_html(doc))
    return {"markdown": run_dir / "report.md", "html": run_dir / "report.html", "plots": run_dir / "plots"}


def summary_text(results: dict[str, Any]) -> str:
    """A plain-text summary table for the terminal: accuracy, change and seconds per scenario and attack."""
    lines = []
    for attack, entry in results["attacks"].items():
        table = summary_table(results, attack)
        widths = [max(len(str(r[i])) for r in (table.header, *table.rows)) for i in range(len(table.header))]
        lines.append(table.title)
        for row in (table.header, *table.rows):
            lines.append("  " + "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                          for i, (c, w) in enumerate(zip(row, widths))))
        lines += [f"  {plain(line)}" for line in verdict(results, attack)]
        lines.append("")
    lines.append(plain(timing_sentence(results)))
    return "\n".join(lines)


__all__ = ["build_document", "render_report", "summary_text", "to_html", "to_markdown"]
