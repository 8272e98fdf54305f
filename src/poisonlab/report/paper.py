"""The report's comparison with the paper in words: what the attack cost, which classes it hurt, where the
defenses end against the clean model, and a verdict on each of the paper's three claims.

Every number is computed from ``results.json`` and the paper's published numbers (``paper_numbers.json``);
a claim's verdict is ``supported``, ``contradicted`` or ``cannot be decided at N seed(s)``: a gap decides
only when it is larger than its noise (:func:`~poisonlab.report.tables.accuracy_gap_noise`,
:func:`~poisonlab.report.tables.seconds_gap_noise`), the rule :func:`~poisonlab.report.tables.verdict` uses.
"""

from __future__ import annotations

from typing import Any

from poisonlab.report.tables import (BASELINES, accuracy_gap_noise, accuracy_noise, defenses_of, n_seeds,
                                     paper_applies, paper_numbers, pct, seconds_gap_noise, seeds_phrase)

HYBRID = "pca+kmeans"  # the paper's hybrid defense, named as in paper_numbers.json and our registry
CLAIMED_FLOOR = 0.99  # the paper: every defense restores accuracy above 99%
CLAIMS = {
    "a": "the hybrid PCA+K-means defense gives the best accuracy",
    "b": "the hybrid is the fastest defense",
    "c": "every defense restores accuracy above 99%",
}
SUPPORTED, CONTRADICTED = "supported", "contradicted"


def paper_comparison(results: dict[str, Any], attack: str) -> list[str]:
    """Paragraphs comparing ``attack`` in this run with the paper, or ``[]`` where the paper does not apply.

    In order: the attack's cost (ours vs the paper's), the classes the paper's attack hurt and what ours
    did to them, where the defenses end against each clean model, the noise rule, then one line per claim.
    """
    if not paper_applies(results, attack):
        return []
    return [_attack_cost(results, attack), _classes_hurt(results, attack), _defenses_vs_clean(results, attack),
            _noise_rule(results), *claim_lines(results, attack)]


def claim_lines(results: dict[str, Any], attack: str) -> list[str]:
    """One line per claim of the paper: ``Claim (a), <claim>: <verdict>. <our numbers and the paper's>.``"""
    return [_claim_a(results, attack), _claim_b(results, attack), _claim_c(results, attack)]


def claim_verdict(gaps: list[tuple[float, float | None]], results: dict[str, Any]) -> str:
    """The verdict on a claim that holds when every ``gap`` is positive, each judged against its noise.

    ``gaps``: ``(gap, noise)`` pairs, positive gap in the claim's favour. Supported when every gap is
    larger than its noise, contradicted when any gap is below minus its noise, otherwise undecided (also
    where a noise is unknown: a gap with no spread beside it decides nothing).
    """
    if not gaps or any(noise is None for _, noise in gaps):
        return undecided(results)
    if any(gap < -noise for gap, noise in gaps):
        return CONTRADICTED
    if all(gap > noise for gap, noise in gaps):
        return SUPPORTED
    return undecided(results)


def undecided(results: dict[str, Any]) -> str:
    return f"cannot be decided at {seeds_phrase(results)}"


# ------------------------------------------------------------------------------------------ paragraphs

def _attack_cost(results: dict[str, Any], attack: str) -> str:
    scenarios, paper = results["attacks"][attack]["scenarios"], paper_numbers()["scenarios"]
    clean, attacked = scenarios["clean"]["accuracy"], scenarios["attacked"]["accuracy"]
    cost = (clean - attacked) * 100
    p_clean, p_attacked = paper["clean"]["accuracy"], paper["attacked"]["accuracy"]
    ours = (f"The attack cost our model {cost:.2f} pp of test accuracy" if round(cost, 2) > 0 else
            f"The attack did not lower our model's test accuracy ({-cost:+.2f} pp)")
    return (f"{ours} ({pct(clean)} clean, {pct(attacked)} attacked); the paper's attack cost "
            f"{p_clean - p_attacked:.2f} pp ({p_clean:.2f}% clean, {p_attacked:.2f}% attacked).")


def _classes_hurt(results: dict[str, Any], attack: str) -> str:
    """The classes that lost more than half the overall drop in the paper, and what ours did to them."""
    names = results["dataset"]["classes"]
    scenarios, paper = results["attacks"][attack]["scenarios"], paper_numbers()["scenarios"]
    p_change = [a - c for c, a in zip(paper["clean"]["per_class"], paper["attacked"]["per_class"])]
    p_drop = paper["clean"]["accuracy"] - paper["attacked"]["accuracy"]
    ours = [None if c is None or a is None else (a - c) * 100 for c, a in
            zip(scenarios["clean"]["per_class_accuracy"], scenarios["attacked"]["per_class_accuracy"])]
    drop = (scenarios["clean"]["accuracy"] - scenarios["attacked"]["accuracy"]) * 100
    paper_hurt = _hurt(p_change, p_drop)
    our_hurt = _hurt(ours, drop)
    text = (f"The paper's attack hurt {_classes(names, paper_hurt)} most ({_changes(p_change, paper_hurt)}; "
            "each lost more than half the overall drop)")
    if not our_hurt:
        on_theirs = [k for k in paper_hurt if ours[k] is not None]
        return (text + f"; ours lowered no class by more than half its overall drop, and changed "
                f"{_classes(names, on_theirs)} by {_changes(ours, on_theirs)}.")
    text += f"; ours hurt {_classes(names, our_hurt)} ({_changes(ours, our_hurt)})"
    spared = [k for k in paper_hurt if k not in our_hurt and ours[k] is not None]
    if set(our_hurt) == set(paper_hurt):
        return text + ", the same classes."
    if spared:
        text += f" and spared {_classes(names, spared, word=False)} ({_changes(ours, spared)})"
    return text + "."


def _defenses_vs_clean(results: dict[str, Any], attack: str) -> str:
    scenarios, paper = results["attacks"][attack]["scenarios"], paper_numbers()["scenarios"]
    clean = scenarios["clean"]
    if not defenses_of(results, attack):
        return "No defenses were run."
    ours = {d: (scenarios[d]["accuracy"] - clean["accuracy"]) * 100 for d in defenses_of(results, attack)}
    theirs = {d: p["accuracy"] - paper["clean"]["accuracy"] for d, p in paper.items() if d not in BASELINES}
    noises = {d: accuracy_gap_noise(results, scenarios[d], clean) * 100 for d in ours}
    beyond = [d for d, gap in ours.items() if abs(gap) > noises[d]]
    lo, hi = min(noises.values()), max(noises.values())
    noise = (f"the larger std over {seeds_phrase(results)}" if n_seeds(results) > 1 else
             "the test-set standard error of a difference") + \
        (f", {lo:.2f} pp" if f"{lo:.2f}" == f"{hi:.2f}" else f", {lo:.2f} to {hi:.2f} pp")
    mine = _position(ours, {d: scenarios[d]["accuracy"] * 100 for d in ours}, "our",
                     f"our clean model's {pct(clean['accuracy'])}")
    mine += (f", {_and(beyond)} by more than the noise ({noise})" if beyond else
             f", every gap inside the noise ({noise})")
    paper_clean = f"{paper['clean']['accuracy']:.2f}%"
    return (f"After filtering and retraining, {mine}; "
            + _position(theirs, {d: paper[d]["accuracy"] for d in theirs}, "the paper's",
                        f"its clean model's {paper_clean}") + ".")


def _noise_rule(results: dict[str, Any]) -> str:
    if n_seeds(results) > 1:
        how = (f"with {n_seeds(results)} seeds, the larger std over seeds of the two values compared (the "
               "value's own std against a fixed threshold such as 99%)")
    else:
        n_test = results["dataset"]["n_test"]
        how = (f"with one seed, for an accuracy the binomial standard error over the {n_test} test images (a "
               "stand-in for the retraining spread, which one seed cannot measure; for two of our models, the "
               "error of their difference), for seconds the spread of this run's equal-work retrainings (as a "
               "difference)")
    return (f"The paper's three claims, judged on its three defenses. A gap decides a claim only where it is "
            f"larger than its noise: {how}. The paper reports one run, with no spread.")


# ------------------------------------------------------------------------------------------ claims

def _paper_defenses(results: dict[str, Any], attack: str) -> list[str]:
    """The paper's defenses that this run has, in the paper's order."""
    ours = results["attacks"][attack]["scenarios"]
    return [d for d in paper_numbers()["scenarios"] if d not in BASELINES and d in ours]


def _claim(letter: str, verdict: str, detail: str) -> str:
    return f"Claim ({letter}), {CLAIMS[letter]}: {verdict}. {detail}"


def _claim_a(results: dict[str, Any], attack: str) -> str:
    scenarios, paper = results["attacks"][attack]["scenarios"], paper_numbers()["scenarios"]
    defenses = _paper_defenses(results, attack)
    if HYBRID not in defenses or len(defenses) < 2:
        return _claim("a", undecided(results), f"This run lacks {HYBRID} or the defenses to compare it with.")
    hybrid, others = scenarios[HYBRID], [d for d in defenses if d != HYBRID]
    gaps = {d: (hybrid["accuracy"] - scenarios[d]["accuracy"],
                accuracy_gap_noise(results, hybrid, scenarios[d])) for d in others}
    leads = [f"{abs(g) * 100:.2f} pp {'ahead of' if g >= 0 else 'behind'} {d} (noise {n * 100:.2f} pp)"
             for d, (g, n) in gaps.items()]
    ours = _listing({d: pct(scenarios[d]["accuracy"]) for d in defenses})
    theirs = _listing({d: f"{paper[d]['accuracy']:.2f}%" for d in defenses})
    paper_leads = _and([f"{paper[HYBRID]['accuracy'] - paper[d]['accuracy']:+.2f} pp over {d}" for d in others])
    detail = f"Ours: {ours}; {HYBRID} is {_and(leads)}."
    ahead = [d for d, (g, n) in gaps.items() if g < -n]
    if ahead:
        detail += f" {_and(ahead)} {'is' if len(ahead) == 1 else 'are'} ahead by more than the noise."
    detail += f" Paper: {theirs} ({paper_leads}, from one run)."
    extra = [d for d in defenses_of(results, attack) if d not in defenses
             and scenarios[d]["accuracy"] > hybrid["accuracy"]]
    if extra:
        best = max(extra, key=lambda d: scenarios[d]["accuracy"])
        detail += (f" Of the defenses the paper did not run, {best} reaches {pct(scenarios[best]['accuracy'])}, "
                   f"above {HYBRID}.")
    return _claim("a", claim_verdict(list(gaps.values()), results), detail)


def _claim_b(results: dict[str, Any], attack: str) -> str:
    scenarios, paper = results["attacks"][attack]["scenarios"], paper_numbers()["scenarios"]
    defenses = [d for d in _paper_defenses(results, attack) if scenarios[d].get("seconds") is not None]
    if HYBRID not in defenses or len(defenses) < 2:
        return _claim("b", undecided(results), f"This run lacks {HYBRID}'s time or the times to compare it with.")
    hybrid, others = scenarios[HYBRID]["seconds"], [d for d in defenses if d != HYBRID]
    gaps = {d: (scenarios[d]["seconds"] - hybrid, seconds_gap_noise(results, attack, HYBRID, d)) for d in others}
    leads = [f"{abs(g):.1f} s {'faster than' if g >= 0 else 'slower than'} {d}"
             + ("" if n is None else f" (noise {n:.1f} s)") for d, (g, n) in gaps.items()]
    ours = _listing({d: f"{scenarios[d]['seconds']:.1f} s" for d in defenses})
    detail = f"Ours: {ours}; {HYBRID} is {_and(leads)}."
    faster = [d for d, (g, n) in gaps.items() if n is not None and g < -n]
    if faster:
        detail += f" {_and(faster)} {'is' if len(faster) == 1 else 'are'} faster by more than the noise."
    if any(n is None for _, n in gaps.values()):
        detail += " One seed without equal-work retrainings gives no timing spread."
    detect = {d: f"{scenarios[d]['seconds_detect']:.1f} s" for d in defenses
              if scenarios[d].get("seconds_detect") is not None}
    if detect:
        detail += f" Detection alone: {_listing(detect)}."
    theirs = _listing({d: f"{paper[d]['runtime_s']:.2f} s" for d in defenses})
    detail += f" Paper: {theirs}, on hardware it does not name, so seconds compare within each source only."
    return _claim("b", claim_verdict(list(gaps.values()), results), detail)


def _claim_c(results: dict[str, Any], attack: str) -> str:
    scenarios, paper = results["attacks"][attack]["scenarios"], paper_numbers()["scenarios"]
    defenses = _paper_defenses(results, attack)
    if not defenses:
        return _claim("c", undecided(results), "This run has none of the paper's defenses.")
    gaps = {d: (scenarios[d]["accuracy"] - CLAIMED_FLOOR, accuracy_noise(results, scenarios[d])) for d in defenses}
    floor = f"{CLAIMED_FLOOR * 100:.0f}%"
    ours = ", ".join(f"{d} {pct(scenarios[d]['accuracy'])} ({g * 100:+.2f} pp from {floor}, noise {n * 100:.2f} pp)"
                     for d, (g, n) in gaps.items())
    theirs = _listing({d: f"{paper[d]['accuracy']:.2f}%" for d in defenses})
    verdict = claim_verdict(list(gaps.values()), results)
    detail = f"Ours: {ours}."
    if verdict == CONTRADICTED:
        short = [d for d, (g, n) in gaps.items() if g < -n]
        detail += f" {_and(short)} {'ends' if len(short) == 1 else 'end'} below {floor} by more than the noise."
    return _claim("c", verdict, f"{detail} Paper: {theirs}.")


# ------------------------------------------------------------------------------------------ wording

def _hurt(changes: list[float | None], drop: float) -> list[int]:
    """Classes whose accuracy fell by more than half the overall drop, most hurt first (none if no drop)."""
    if drop <= 0:
        return []
    hurt = [k for k, c in enumerate(changes) if c is not None and -c > drop / 2]
    return sorted(hurt, key=lambda k: changes[k])


def _classes(names: list[str], ks: list[int], *, word: bool = True) -> str:
    if not ks:
        return "no class"
    listed = _and([names[k] for k in ks])
    return (("class " if len(ks) == 1 else "classes ") if word else "") + listed


def _changes(changes: list[float | None], ks: list[int]) -> str:
    return _and([f"{changes[k]:+.2f}" for k in ks]) + " pp"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _listing(values: dict[str, str]) -> str:
    return ", ".join(f"{d} {v}" for d, v in values.items())


def _position(gaps: dict[str, float], values: dict[str, float], whose: str, reference: str) -> str:
    """``all 5 of our defenses end below <reference> (<span>)``, or which end above and which below."""
    above = [d for d, g in gaps.items() if round(g, 2) > 0]
    below = [d for d, g in gaps.items() if round(g, 2) < 0]
    level = [d for d in gaps if d not in above and d not in below]
    n, span = len(gaps), _span(gaps, values)
    for side, group in (("above", above), ("below", below), ("level with", level)):
        if len(group) == n:
            who = f"{whose} one defense ends" if n == 1 else f"{'both' if n == 2 else f'all {n}'} of {whose} " \
                                                             "defenses end"
            return f"{who} {side} {reference} ({span})"
    parts = [f"{len(g)} {side} ({', '.join(g)})" for side, g in (("below", below), ("level with", level)) if g]
    head = f"{len(above)} end above {reference} ({', '.join(above)})" if above else \
        f"none ends above {reference}"
    return f"of {whose} {n} defenses, {head}, " + " and ".join(parts) + f" ({span})"


def _span(gaps: dict[str, float], values: dict[str, float]) -> str:
    """``98.85% to 99.05%, -0.23 to -0.03 pp`` over the defenses (one value where there is one)."""
    lo, hi = min(values.values()), max(values.values())
    glo, ghi = min(gaps.values()), max(gaps.values())
    if len(values) == 1:
        return f"{lo:.2f}%, {glo:+.2f} pp"
    return f"{lo:.2f}% to {hi:.2f}%, {glo:+.2f} to {ghi:+.2f} pp"


__all__ = ["CLAIMED_FLOOR", "CLAIMS", "CONTRADICTED", "HYBRID", "SUPPORTED", "claim_lines", "claim_verdict",
           "paper_comparison", "undecided"]
