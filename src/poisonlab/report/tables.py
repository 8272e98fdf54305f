"""The report's tables, built from ``results.json`` alone: the paper's Figure 2 and 3 layouts with deltas,
our numbers next to the paper's, runtimes, detection metrics, and a verdict that respects the spread.

Every function returns plain :class:`Table` objects with string cells; ``render`` turns them into Markdown
or HTML. Accuracies are shown in percent; deltas in percentage points (pp).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from poisonlab.results import BASELINE_SCENARIOS as BASELINES


@dataclass(frozen=True)
class Table:
    """A titled table of formatted cells; ``note`` is a sentence printed under it."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@lru_cache(maxsize=1)
def paper_numbers() -> dict[str, Any]:
    """The paper's published numbers (accuracies in percent, runtimes in seconds), shipped in the package."""
    text = (resources.files("poisonlab") / "resources" / "paper_numbers.json").read_text(encoding="utf-8")
    return json.loads(text)


PAPER_ATTACK = "label-flip"  # the attack behind the paper's Figures 2-3 (which it calls gradient matching)
FULL_MNIST_TRAIN = 60000  # the paper trains on all of MNIST's training images


def paper_mismatch(results: dict[str, Any], attack: str) -> str:
    """Why the paper's numbers do not compare with ``attack`` in this run, or ``""`` where they do.

    They compare only for the primary attack when it is the paper's label flip, on the full MNIST
    training set with its 10 classes: a slice or another dataset has other accuracies and run times.
    """
    ds = results["dataset"]
    name = results["attacks"][attack]["attack"].get("name")
    if attack != results.get("primary_attack"):
        return f"{attack} is not the primary attack, the one compared with the paper"
    if name != PAPER_ATTACK:
        return f"the primary attack is {name}, not the paper's {PAPER_ATTACK}"
    if ds["name"] != "mnist":
        return f"this run's dataset is {ds['name']}, not MNIST"
    if len(ds["classes"]) != len(paper_numbers()["scenarios"]["clean"]["per_class"]):
        return f"this run has {len(ds['classes'])} classes, not MNIST's 10"
    if ds["n_train"] < FULL_MNIST_TRAIN:
        return f"this run trains on a {ds['n_train']}-image slice, not MNIST's {FULL_MNIST_TRAIN} training images"
    return ""


def paper_applies(results: dict[str, Any], attack: str) -> bool:
    """The paper's numbers are comparable only for its label-flip attack on full MNIST (see
    :func:`paper_mismatch`)."""
    return not paper_mismatch(results, attack)


def defenses_of(results: dict[str, Any], attack: str) -> list[str]:
    return [n for n in results["attacks"][attack]["scenarios"] if n not in BASELINES]


def n_seeds(results: dict[str, Any]) -> int:
    return len(results.get("seeds", [0]))


def seeds_phrase(results: dict[str, Any]) -> str:
    k = n_seeds(results)
    return f"{k} seed" + ("" if k == 1 else "s")


# ------------------------------------------------------------------------------------------ noise

def accuracy_noise(results: dict[str, Any], scenario: dict[str, Any]) -> float:
    """The noise one model's accuracy (a fraction) is judged against.

    With several seeds its standard deviation over seeds; with one seed the binomial standard error of an
    accuracy over its test images, a stand-in because one seed cannot measure the retraining spread.
    """
    if n_seeds(results) > 1:
        return _std(scenario, "accuracy") or 0.0
    n = scenario.get("n_test") or results["dataset"]["n_test"]
    p = min(max(scenario["accuracy"], 0.5 / n), 1 - 0.5 / n)  # a perfect score still has sampling noise
    return math.sqrt(p * (1 - p) / n)


def accuracy_gap_noise(results: dict[str, Any], a: dict[str, Any], b: dict[str, Any]) -> float:
    """The noise a gap in accuracy between two scenarios is judged against.

    With several seeds the larger of their stds; with one seed the standard error of the difference of
    two single runs (both models' binomial errors), since neither value is a mean.
    """
    if n_seeds(results) > 1:
        return max(accuracy_noise(results, a), accuracy_noise(results, b))
    return math.hypot(accuracy_noise(results, a), accuracy_noise(results, b))


def seconds_gap_noise(results: dict[str, Any], attack: str, a: str, b: str) -> float | None:
    """The noise a gap in seconds between two defenses is judged against, or None where none is known.

    With several seeds the larger std of their seconds over seeds. With one seed, where every retraining
    gets the same optimizer steps (``retrain_budget="steps"``), the spread of those equal-work retraining
    times under ``attack`` (as the noise of a difference, times sqrt 2): worker processes share the cores,
    so the same work takes different times.
    """
    scenarios = results["attacks"][attack]["scenarios"]
    if n_seeds(results) > 1:
        return max(_std(scenarios[a], "seconds") or 0.0, _std(scenarios[b], "seconds") or 0.0)
    retrains = [scenarios[d].get("seconds_retrain") for d in defenses_of(results, attack)]
    retrains = [s for s in retrains if s is not None]
    if results["config"].get("retrain_budget") != "steps" or len(retrains) < 2:
        return None
    return statistics.stdev(retrains) * math.sqrt(2)


# ------------------------------------------------------------------------------------------ formatting

def pct(fraction: float | None, digits: int = 2) -> str:
    return "n/a" if fraction is None else f"{fraction * 100:.{digits}f}%"


def pct_std(fraction: float | None, std: float | None, digits: int = 2) -> str:
    """``99.12%`` or, with a spread, ``99.12% ± 0.05``."""
    if fraction is None:
        return "n/a"
    return pct(fraction, digits) + ("" if std is None else f" ± {std * 100:.{digits}f}")


def delta_pp(value: float | None, reference: float | None, *, scale: float = 100.0) -> str:
    """A signed difference in percentage points, e.g. ``+19.67``."""
    if value is None or reference is None:
        return "n/a"
    return f"{(value - reference) * scale:+.2f}"


def num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def num_std(value: float | None, std: float | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" + ("" if std is None else f" ± {std:.{digits}f}")


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _std(scenario: dict[str, Any], key: str) -> Any:
    return (scenario.get("std") or {}).get(key)


# ------------------------------------------------------------------------------------------ tables

def summary_table(results: dict[str, Any], attack: str) -> Table:
    """One row per scenario: accuracy (± std over seeds), change against the attacked model, the paper's
    accuracy where it has one, seconds, and a defense's F1 and removals."""
    scenarios = results["attacks"][attack]["scenarios"]
    paper = paper_numbers()["scenarios"] if paper_applies(results, attack) else {}
    attacked = scenarios["attacked"]["accuracy"]
    # a targeted attack (gradient matching) is judged by its targets, not by accuracy
    targeted = any("target_success_rate" in s for s in scenarios.values())
    backdoor = is_backdoor(results, attack)  # and a backdoor by its attack success rate
    rows = []
    for name, s in scenarios.items():
        p = paper.get(name, {})
        row: tuple[str, ...] = (name, pct_std(s["accuracy"], _std(s, "accuracy")),
                                "" if name == "attacked" else delta_pp(s["accuracy"], attacked))
        if paper:
            row += (f"{p['accuracy']:.2f}%" if "accuracy" in p else "",)
        row += (seconds(s.get("seconds")),)
        if paper:
            row += (seconds(p.get("runtime_s")) if "runtime_s" in p else "",)
        row += (num_std(s.get("f1"), _std(s, "f1")) if name not in BASELINES else "",
                f"{s['removed']:.0f} ({s['poisons_removed']:.0f} poisons)" if name not in BASELINES else "")
        if targeted:
            row += (pct_std(s.get("target_success_rate"), _std(s, "target_success_rate"), digits=1),)
        if backdoor:
            row += (pct_std(s.get("attack_success_rate"), _std(s, "attack_success_rate"), digits=1),)
        rows.append(row)
    header = ("Scenario", "Accuracy", "Δ vs attacked (pp)") + (("Paper accuracy",) if paper else ()) \
        + ("Seconds",) + (("Paper seconds",) if paper else ()) + ("Detection F1", "Removed")
    return Table(
        title=f"Summary: {attack}",
        header=header + (("Targets in adversarial class",) if targeted else ())
        + (("Attack success",) if backdoor else ()),
        rows=tuple(rows),
        note=_spread_note(results) + (" Paper numbers: the paper's Figures 2-3 (MNIST)." if paper else
                                       " The paper's numbers are for its label-flip attack on full MNIST; "
                                       f"not comparable here: {paper_mismatch(results, attack)}."),
    )


def figure2_table(results: dict[str, Any], attack: str) -> Table:
    """The paper's Figure 2: per class, before the attack and after it (with the change), ours and paper's."""
    scenarios = results["attacks"][attack]["scenarios"]
    clean, attacked = scenarios["clean"], scenarios["attacked"]
    paper = paper_numbers()["scenarios"] if paper_applies(results, attack) else None
    rows = []
    for k, name in enumerate(results["dataset"]["classes"]):
        c_acc, a_acc = clean["per_class_accuracy"][k], attacked["per_class_accuracy"][k]
        c_mis, a_mis = clean["per_class_misclassification"][k], attacked["per_class_misclassification"][k]
        row = [f"Class {name}", pct(c_acc), pct(c_mis),
               f"{pct(a_acc)} ({delta_pp(a_acc, c_acc)})", f"{pct(a_mis)} ({delta_pp(a_mis, c_mis)})"]
        if paper:
            pc, pa = paper["clean"]["per_class"][k], paper["attacked"]["per_class"][k]
            row += [f"{pc:.2f}%", f"{pa:.2f}% ({pa - pc:+.2f})", f"{100 - pa:.2f}% ({pc - pa:+.2f})"]
        rows.append(tuple(row))
    total = ["All", pct(clean["accuracy"]), pct(1 - clean["accuracy"]),
             f"{pct(attacked['accuracy'])} ({delta_pp(attacked['accuracy'], clean['accuracy'])})",
             f"{pct(1 - attacked['accuracy'])} ({delta_pp(clean['accuracy'], attacked['accuracy'])})"]
    header = ["Class", "Before: accuracy", "Before: misclass.", "After: accuracy (Δ pp)", "After: misclass. (Δ pp)"]
    if paper:
        pc, pa = paper["clean"]["accuracy"], paper["attacked"]["accuracy"]
        total += [f"{pc:.2f}%", f"{pa:.2f}% ({pa - pc:+.2f})", f"{100 - pa:.2f}% ({pc - pa:+.2f})"]
        header += ["Paper before: accuracy", "Paper after: accuracy (Δ)", "Paper after: misclass. (Δ)"]
    rows.append(tuple(total))
    config = results["config"]
    epochs = ("" if config["clean_epochs"] == config["attacked_epochs"] else
              f" The clean model trained {config['clean_epochs']} epoch(s), the attacked one "
              f"{config['attacked_epochs']}: part of the change is the training length.")
    return Table(title=f"Figure 2: before and after the attack ({attack})", header=tuple(header), rows=tuple(rows),
                 note="Δ: change against the model before the attack, in percentage points. "
                      "Misclassification = 100% - per-class accuracy." + epochs + _mean_note(results))


def figure3_table(results: dict[str, Any], attack: str, defense: str) -> Table:
    """The paper's Figure 3 for one defense: per class accuracy and misclassification with the change
    against the attacked model, next to the paper's where it has this defense."""
    scenarios = results["attacks"][attack]["scenarios"]
    s, attacked = scenarios[defense], scenarios["attacked"]
    paper_all = paper_numbers()["scenarios"] if paper_applies(results, attack) else {}
    paper = paper_all.get(defense)
    rows = []
    for k, name in enumerate(results["dataset"]["classes"]):
        acc, a_acc = s["per_class_accuracy"][k], attacked["per_class_accuracy"][k]
        mis, a_mis = s["per_class_misclassification"][k], attacked["per_class_misclassification"][k]
        row = [f"Class {name}", f"{pct(acc)} ({delta_pp(acc, a_acc)})", f"{pct(mis)} ({delta_pp(mis, a_mis)})"]
        if paper:
            p, pa = paper["per_class"][k], paper_all["attacked"]["per_class"][k]
            row += [f"{p:.2f}% ({p - pa:+.2f})", f"{100 - p:.2f}% ({pa - p:+.2f})"]
        rows.append(tuple(row))
    total = ["All", f"{pct(s['accuracy'])} ({delta_pp(s['accuracy'], attacked['accuracy'])})",
             f"{pct(1 - s['accuracy'])} ({delta_pp(attacked['accuracy'], s['accuracy'])})"]
    header = ["Class", "Accuracy (Δ pp)", "Misclass. (Δ pp)"]
    if paper:
        p, pa = paper["accuracy"], paper_all["attacked"]["accuracy"]
        total += [f"{p:.2f}% ({p - pa:+.2f})", f"{100 - p:.2f}% ({pa - p:+.2f})"]
        header += ["Paper accuracy (Δ)", "Paper misclass. (Δ)"]
    rows.append(tuple(total))
    title = (f"Figure 3: {defense} defense ({attack}), accuracy {pct(s['accuracy'])}, "
             f"run time {seconds(s.get('seconds'))} s")
    if paper:
        title += f" (paper: {paper['accuracy']:.2f}%, {paper['runtime_s']:.2f} s)"
    return Table(title=title, header=tuple(header), rows=tuple(rows),
                 note="Δ: change against the attacked model, in percentage points." + _mean_note(results))


def runtime_table(results: dict[str, Any], attack: str) -> Table:
    """Where each scenario's time goes, next to the paper's run times."""
    scenarios = results["attacks"][attack]["scenarios"]
    paper = paper_numbers()["scenarios"] if paper_applies(results, attack) else {}
    rows = []
    for name, s in scenarios.items():
        if name in BASELINES:
            parts = (seconds(s.get("seconds_attack")) if name == "attacked" else "", seconds(s["seconds"]), "", "", "")
        else:
            parts = ("", "", seconds(s.get("seconds_features")), seconds(s.get("seconds_detect")),
                     seconds(s.get("seconds_retrain")))
        p = paper.get(name, {}).get("runtime_s")
        rows.append((name, *parts, seconds(s.get("seconds")))
                    + (("" if p is None else f"{p:.2f}",) if paper else ()))
    return Table(
        title=f"Run times in seconds ({attack})",
        header=("Scenario", "Attack", "Train", "Features", "Detect", "Retrain", "Total")
        + (("Paper total",) if paper else ()),
        rows=tuple(rows),
        note=f"Ours measured on {_machine(results)}. A defense's total is features + detect + retrain (the "
             "attacked model's time is not in it); the attacked total is its training time."
             + (" The paper does not say what its run time covers or on what hardware it was measured."
                if paper else ""),
    )


def detection_table(results: dict[str, Any], attack: str) -> Table:
    """Precision, recall, F1, ROC-AUC, average precision, the oracle F1 at the true poison rate and removal
    counts of each defense against the true poison mask ("n/a" where an older results file lacks a value)."""
    scenarios = results["attacks"][attack]["scenarios"]
    rows = []
    for name in defenses_of(results, attack):
        s = scenarios[name]
        rows.append((name, num_std(s.get("precision"), _std(s, "precision")),
                     num_std(s.get("recall"), _std(s, "recall")), num_std(s.get("f1"), _std(s, "f1")),
                     num_std(s.get("roc_auc"), _std(s, "roc_auc")),
                     num_std(s.get("average_precision"), _std(s, "average_precision")),
                     num_std(s.get("f1_at_true_rate"), _std(s, "f1_at_true_rate")), f"{s['removed']:.0f}",
                     f"{s['poisons_removed']:.0f} of {s['n_poison']:.0f}", f"{s['clean_removed']:.0f}"))
    return Table(title=f"Detection ({attack})",
                 header=("Defense", "Precision", "Recall", "F1", "ROC-AUC", "Avg precision",
                         "F1 at true rate (oracle)", "Removed", "Poisons removed", "Clean removed"),
                 rows=tuple(rows), note="Against the ground-truth poison mask of the attacked training set. "
                 "Precision, recall and F1 are those of each defense's own threshold; ROC-AUC, average precision "
                 "and the F1 at the true rate judge the ranking alone. The last flags exactly as many samples as "
                 "there are poisons, an oracle diagnostic: no defender knows that number."
                 + _mean_note(results))


def is_backdoor(results: dict[str, Any], attack: str) -> bool:
    """Whether ``attack``'s scenarios carry backdoor metrics (an older file's backdoor run does not)."""
    return any(s.get("attack_success_rate") is not None for s in results["attacks"][attack]["scenarios"].values())


def backdoor_table(results: dict[str, Any], attack: str) -> Table:
    """A backdoor attack per scenario: clean accuracy, attack success rate (with its change against the
    attacked model), robust accuracy, and for defenses the poisons removed; the clean model's success rate
    is the base rate of the trigger alone."""
    entry = results["attacks"][attack]
    scenarios = entry["scenarios"]
    attacked = scenarios["attacked"].get("attack_success_rate")
    rows = []
    for name, s in scenarios.items():
        asr = s.get("attack_success_rate")
        rows.append((name, pct_std(s["accuracy"], _std(s, "accuracy")),
                     pct_std(asr, _std(s, "attack_success_rate"), digits=1),
                     "" if name in BASELINES else delta_pp(asr, attacked),
                     pct_std(s.get("robust_accuracy"), _std(s, "robust_accuracy"), digits=1),
                     "" if name in BASELINES else f"{s['poisons_removed']:.0f} of {s['n_poison']:.0f}"))
    info = entry["attack"].get("backdoor") or {}
    target, source = info.get("target_class"), info.get("source_class")
    attacked_classes = "every class but the target" if source is None else f"class {source}"
    measured = (f" Measured on the {info['n_triggered']} test images of {attacked_classes}, triggered; target class "
                f"{target}." if "n_triggered" in info else "")
    return Table(title=f"Backdoor: attack success ({attack})",
                 header=("Scenario", "Clean accuracy", "Attack success", "Δ vs attacked (pp)", "Robust accuracy",
                         "Poisons removed"),
                 rows=tuple(rows),
                 note="Attack success: share of triggered test images classified as the target; robust accuracy: "
                      "share still classified as their true class. The clean model's attack success is the base "
                      "rate of the trigger alone; a defense's is that of the model retrained on what it kept."
                      + measured + _mean_note(results))


def stage_timing_table(results: dict[str, Any]) -> Table:
    """Time per stage kind over the whole run (computed now vs loaded from the stage cache)."""
    totals: dict[str, list[float]] = {}
    for t in results.get("timing", {}).get("stages", []):
        entry = totals.setdefault(t["stage"], [0, 0, 0.0])
        entry[1 if t["cached"] else 0] += 1
        if not t["cached"]:
            entry[2] += t["seconds"]
    rows = tuple((stage, str(computed), str(cached), seconds(secs))
                 for stage, (computed, cached, secs) in totals.items())
    return Table(title="Where the time went", header=("Stage", "Computed", "From cache", "Seconds computed"),
                 rows=rows, note=timing_sentence(results))


def timing_sentence(results: dict[str, Any]) -> str:
    """The run's wall time and its stages' summed computation, worded so that neither reads as a part of
    the other: stages run side by side in worker processes, so their sum can exceed the wall time."""
    timing = results.get("timing", {})
    wall, computed = timing.get("total_seconds"), timing.get("computed_seconds")
    text = (f"Wall time of the run: {seconds(wall)} s. The computed stages add up to {seconds(computed)} s of "
            "computation across processes")
    workers = results.get("machine", {}).get("training_workers")
    if wall is not None and computed is not None and computed > wall:
        side = f" in {workers} training worker processes" if workers else ""
        return text + f", more than the wall time because stages overlap (they ran side by side{side})."
    return text + "; stages can overlap, so this sum is not a share of the wall time."


# ------------------------------------------------------------------------------------------ verdict

def verdict(results: dict[str, Any], attack: str) -> list[str]:
    """Sentences on which defense did best, that name no winner where the gap is inside the noise
    (:func:`accuracy_gap_noise`, the same rule the paper's claims are judged by)."""
    scenarios = results["attacks"][attack]["scenarios"]
    defenses = defenses_of(results, attack)
    if not defenses:
        return ["No defenses were run."]
    attacked = scenarios["attacked"]["accuracy"]
    lines = []
    below = [d for d in defenses if scenarios[d]["accuracy"] <= attacked]
    if below:
        line = f"Not above the attacked model ({pct(attacked)}): {', '.join(below)}."
        cost = scenarios["clean"]["accuracy"] - attacked if "clean" in scenarios else None
        if cost is not None and cost < WEAK_ATTACK:
            line += (" " + attack_cost_phrase(cost) + ", so there is "
                     + ("little" if round(cost * 100, 2) > 0 else "nothing") + " for a filter to win back")
            line += ("; compare defenses over several seeds (`--seeds N`) before reading a ranking into gaps "
                     "this small." if n_seeds(results) < 2 else
                     f"; the ranking below is judged against the spread over {seeds_phrase(results)}.")
        lines.append(line)
    else:
        lines.append(f"Every defense is above the attacked model ({pct(attacked)}).")
    for metric, label, fmt in (("accuracy", "test accuracy", lambda v: pct(v)),
                               ("f1", "detection F1", lambda v: num(v))):
        ranked = sorted((d for d in defenses if scenarios[d].get(metric) is not None),
                        key=lambda d: scenarios[d][metric], reverse=True)
        if len(ranked) < 2:
            continue
        lines.append(_compare(results, scenarios, ranked, metric, label, fmt))
    return lines


WEAK_ATTACK = 0.005  # an attack costing under half a point of accuracy leaves a filter nothing to win back


def attack_cost_phrase(cost: float) -> str:
    """``cost`` (clean minus attacked accuracy, a fraction) in words that stay true when it is negative:
    an attack that raised accuracy did not "cost" a negative amount."""
    if round(cost * 100, 2) > 0:
        return f"The attack itself cost only {cost * 100:.2f} pp against the clean model"
    return f"The attack did not lower accuracy against the clean model ({-cost * 100:+.2f} pp)"


def _compare(results: dict[str, Any], scenarios: dict[str, Any], ranked: list[str], metric: str, label: str,
             fmt) -> str:
    best, second = ranked[0], ranked[1]
    gap = scenarios[best][metric] - scenarios[second][metric]
    scale, unit, digits = (100, " pp", 2) if metric == "accuracy" else (1, "", 3)
    if n_seeds(results) < 2:
        lead = (f"{gap * scale:.{digits}f}{unit} ahead of {second}" if round(gap * scale, digits) > 0
                else f"tied with {second}")
        text = f"Highest {label} on this single seed: {best} ({fmt(scenarios[best][metric])}), {lead}"
        if metric != "accuracy":
            return text + ". One seed gives no spread, so this is no ranking; run with `--seeds N` to compare."
        noise = accuracy_gap_noise(results, scenarios[best], scenarios[second])
        if gap > noise:
            return (text + f", more than the test-set noise of a difference ({noise * 100:.2f} pp); one seed "
                    "measures no retraining spread, so confirm it with `--seeds N`.")
        return (text + f", inside the test-set noise of a difference ({noise * 100:.2f} pp): no ranking on a "
                "single seed; run with `--seeds N` to compare.")
    spread = {d: _std(scenarios[d], metric) or 0.0 for d in ranked}
    gaps = {d: scenarios[best][metric] - scenarios[d][metric] for d in ranked[1:]}
    tied = [d for d in ranked[1:] if gaps[d] <= max(spread[best], spread[d])]  # as claim_verdict: equal decides nothing
    if tied:
        return (f"{label.capitalize()}: {best} ({fmt(scenarios[best][metric])}) and {', '.join(tied)} differ by "
                f"less than their spread over {n_seeds(results)} seeds (std up to "
                f"{max(spread[d] for d in [best, *tied]) * scale:.{digits}f}{unit}); no winner among them.")
    return (f"Highest {label}: {best} ({fmt(scenarios[best][metric])}), {gap * scale:.{digits}f}{unit} ahead of "
            f"{second}, more than either's spread over {n_seeds(results)} seeds.")


def _spread_note(results: dict[str, Any]) -> str:
    k = n_seeds(results)
    return (f"Mean ± standard deviation over {k} seeds." if k > 1 else
            "One seed: no spread estimate.")


def _mean_note(results: dict[str, Any]) -> str:
    k = n_seeds(results)
    return f" Means over {k} seeds." if k > 1 else ""


def _machine(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    return f"{m.get('cpu') or 'an unknown CPU'} ({m.get('threads', '?')} threads, {m.get('precision', '?')})"


__all__ = ["FULL_MNIST_TRAIN", "PAPER_ATTACK", "Table", "accuracy_gap_noise", "accuracy_noise",
           "attack_cost_phrase", "defenses_of", "detection_table", "figure2_table", "figure3_table",
           "paper_applies", "paper_mismatch", "paper_numbers", "runtime_table", "seconds_gap_noise",
           "seeds_phrase", "stage_timing_table", "summary_table", "timing_sentence", "verdict"]
