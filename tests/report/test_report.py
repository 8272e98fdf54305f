"""The report: the paper's tables beside ours, the verdict's respect for the spread, and a self-contained
HTML file that a real browser renders with every image decoded."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.container import ErrorbarContainer

from poisonlab._io import save_npz, write_json
from poisonlab.errors import PoisonlabError
from poisonlab.experiment import ExperimentConfig
from poisonlab.results import RESULTS_FORMAT, aggregate_scenarios
from poisonlab.report import plots, render_report, summary_text
from poisonlab.report.paper import claim_verdict, paper_comparison
from poisonlab.report.plots import confusion_matrices_figure, per_class_accuracy_figure, runtime_and_f1_figure
from poisonlab.report.tables import (figure2_table, paper_applies, paper_mismatch, paper_numbers,
                                     runtime_table, stage_timing_table, summary_table, verdict)

CLASSES = [str(k) for k in range(10)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def scenario(per_class: list[float], *, seconds: float = 2.0, f1: float | None = None) -> dict:
    """One seed's scenario with a confusion matrix of 100 test images per class matching ``per_class``."""
    cm = np.zeros((10, 10), dtype=int)
    for k, acc in enumerate(per_class):
        cm[k, k] = round(acc * 100)
        cm[k, (k + 1) % 10] = 100 - cm[k, k]
    acc = [cm[k, k] / 100 for k in range(10)]
    s = {"accuracy": float(np.trace(cm) / cm.sum()), "per_class_accuracy": acc,
         "per_class_misclassification": [1 - a for a in acc], "confusion_matrix": cm.tolist(), "n_test": 1000,
         "n_train": 60000, "seconds": seconds}
    if f1 is not None:
        s.update(seconds_features=0.5, seconds_detect=0.5, seconds_retrain=seconds - 1.0, precision=f1, recall=f1,
                 f1=f1, roc_auc=0.9, removed=1000, poisons_removed=900, clean_removed=100, poisons_kept=100,
                 n_poison=1000, n_samples=60000, n_train=59000)
    return s


def fake_results(run_dir: Path, *, seed_shifts=(0.0,), gap: float = 0.02, dataset: str = "mnist",
                 n_train: int = 60000, hybrid: float | None = None, hybrid_seconds: float = 3.0) -> dict:
    """results.json content with the layout of ``assemble_results``; ``gap``: pca's lead over kmeans on
    every class; ``seed_shifts``: per-seed offsets that make the spread; ``hybrid``: pca+kmeans's accuracy
    on every class (with ``hybrid_seconds``), none if None."""
    seeds = list(range(len(seed_shifts)))
    per_seed = []
    for shift in seed_shifts:
        per_seed.append({
            "clean": scenario([0.99] * 10),
            "attacked": scenario([0.99] * 2 + [0.80] + [0.97] * 7),
            "pca": scenario([0.96 + gap + shift] * 10, seconds=5.0, f1=0.8 + shift),
            "kmeans": scenario([0.96 - shift] * 10, seconds=4.0, f1=0.7 - shift),
        })
        if hybrid is not None:
            per_seed[-1]["pca+kmeans"] = scenario([hybrid + shift] * 10, seconds=hybrid_seconds + 10 * shift,
                                                  f1=0.85)
    scenarios = {name: aggregate_scenarios([p[name] for p in per_seed]) for name in per_seed[0]}
    rng = np.random.default_rng(0)
    save_npz(run_dir / "projections" / "label-flip-seed0.npz", xy=rng.normal(size=(300, 2)).astype(np.float32),
             index=np.arange(300), labels=rng.integers(0, 10, 300), is_poison=rng.random(300) < 0.1,
             defenses=np.asarray(["pca", "kmeans"]), flagged=rng.random((2, 300)) < 0.1)
    attack = {"attack": {"name": "label-flip", "params": {"rate": 0.45, "source_class": 2, "target_class": 8},
                         "record": {}, "n_poison": 1000, "rate_of_train": 1000 / 60000},
              "scenarios": scenarios, "projections": {"0": "projections/label-flip-seed0.npz"}}
    config = ExperimentConfig().to_dict()
    config.update(seeds=seeds, dataset=dataset, defenses=list(scenarios)[2:])
    results = {"format": RESULTS_FORMAT, "poisonlab_version": "0.1.0", "created": "2026-01-01T00:00:00+00:00",
               "torch_version": "2.13.0", "machine": {"platform": "Linux", "cpu": "Test CPU", "cpu_count": 2,
                                                      "threads": 2, "python": "3.11", "precision": "bf16"},
               "config": config, "seeds": seeds,
               "dataset": {"name": dataset, "n_train": n_train, "n_test": 1000, "classes": CLASSES},
               "primary_attack": "label-flip", "attacks": {"label-flip": attack}, "scenarios": scenarios,
               "timing": {"total_seconds": 30.0, "computed_seconds": 25.0,
                          "stages": [{"stage": "clean", "attack": None, "defense": None, "seed": 0, "seconds": 2.0,
                                      "cached": False}]}}
    write_json(run_dir / "results.json", results)
    return json.loads(json.dumps(results))


def test_markdown_has_paper_tables_beside_ours(tmp_path):
    fake_results(tmp_path)
    paths = render_report(tmp_path)
    md = paths["markdown"].read_text()
    paper = paper_numbers()["scenarios"]
    assert "Figure 2: before and after the attack" in md and "Figure 3: pca defense" in md
    # the paper's attacked class 2 (79.46%, -20.35 pp) and its PCA class 2 recovery (+19.67 pp)
    assert f"{paper['attacked']['per_class'][2]:.2f}% (-20.35)" in md
    assert "99.13% (+19.67)" in md and "206.23" in md
    # ours: attacked class 2 at 80% is -19 pp from clean's 99%; pca is +18 pp over the attacked 80%
    assert "| Class 2 | 99.00% | 1.00% | 80.00% (-19.00) | 20.00% (+19.00) |" in md
    assert "98.00% (+18.00)" in md
    assert "Detection (label-flip)" in md and "Run times in seconds" in md
    for name in ("per-class-accuracy", "confusion", "runtime-f1", "feature-space-seed0"):
        png = tmp_path / "plots" / f"label-flip-{name}.png"
        assert png.read_bytes().startswith(PNG_MAGIC)
        assert f"](plots/{png.name})" in md


def test_threshold_free_views_are_in_the_report_when_the_file_has_them(tmp_path):
    results = fake_results(tmp_path)
    md = render_report(tmp_path)["markdown"].read_text()
    # an older file without the new keys: the column shows "-" and there is no PR plot
    assert "F1 at true rate (oracle)" in md and "| pca | 0.800 | 0.800 | 0.800 | 0.900 | n/a | n/a |" in md
    assert not (tmp_path / "plots" / "label-flip-pr-curves.png").exists()
    grid = np.linspace(0, 1, 101)
    for name, scenario_ in results["attacks"]["label-flip"]["scenarios"].items():
        if name in ("pca", "kmeans"):
            scenario_.update(average_precision=0.85, f1_at_true_rate=0.9, pr_precision=list(1 - 0.5 * grid ** 2),
                             roc_tpr=list(np.sqrt(grid)))
    write_json(tmp_path / "results.json", results)
    md = render_report(tmp_path)["markdown"].read_text()
    assert "| pca | 0.800 | 0.800 | 0.800 | 0.900 | 0.850 | 0.900 |" in md
    png = tmp_path / "plots" / "label-flip-pr-curves.png"
    assert png.read_bytes().startswith(PNG_MAGIC) and f"](plots/{png.name})" in md
    fig = plots.pr_curves_figure(results["attacks"]["label-flip"]["scenarios"], title="t")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "pca (AP 0.850)" in labels and "kmeans (AP 0.850)" in labels


def test_backdoor_table_and_plot_come_with_attack_success(tmp_path):
    results = fake_results(tmp_path)
    md = render_report(tmp_path)["markdown"].read_text()
    assert "Backdoor: attack success" not in md and "Attack success" not in md  # no backdoor, no column
    entry = results["attacks"]["label-flip"]
    rates = {"clean": (0.01, 0.98), "attacked": (0.99, 0.01), "pca": (0.6, 0.35), "kmeans": (0.02, 0.95)}
    for name, (asr, robust) in rates.items():
        entry["scenarios"][name].update(attack_success_rate=asr, robust_accuracy=robust)
    entry["attack"]["backdoor"] = {"target_class": 0, "source_class": None, "n_triggered": 900}
    write_json(tmp_path / "results.json", results)
    md = render_report(tmp_path)["markdown"].read_text()
    assert "**Backdoor: attack success (label-flip)**" in md
    assert "| kmeans | 96.00% | 2.0% | -97.00 | 95.0% | 900 of 1000 |" in md
    assert "| clean | 99.00% | 1.0% |  | 98.0% |  |" in md and "Measured on the 900 test images" in md
    png = tmp_path / "plots" / "label-flip-attack-success.png"
    assert png.read_bytes().startswith(PNG_MAGIC) and f"](plots/{png.name})" in md
    fig = plots.attack_success_figure(entry["scenarios"], title="t")
    heights = [round(p.get_height(), 6) for p in fig.axes[0].patches][:4]
    assert heights == [1.0, 99.0, 60.0, 2.0]  # the attack-success bars, in scenario order
    assert summary_table(results, "label-flip").header[-1] == "Attack success"


def test_no_paper_columns_for_another_dataset(tmp_path):
    results = fake_results(tmp_path, dataset="digits")
    table = figure2_table(results, "label-flip")
    assert not any("Paper" in h for h in table.header)
    assert "not comparable" in render_report(tmp_path)["markdown"].read_text()


def test_verdict_names_no_winner_inside_the_spread(tmp_path):
    # pca leads by 0.2 pp but the seeds move each by 2 pp: a tie
    results = fake_results(tmp_path, seed_shifts=(0.0, 0.02, -0.02), gap=0.002)
    lines = " ".join(verdict(results, "label-flip"))
    assert "less than their spread over 3 seeds" in lines and "no winner" in lines
    assert "Highest test accuracy:" not in lines


def test_verdict_crowns_a_clear_winner(tmp_path):
    results = fake_results(tmp_path, seed_shifts=(0.0, 0.001, -0.001), gap=0.03)
    lines = verdict(results, "label-flip")
    assert any(line.startswith("Highest test accuracy: pca") and "more than either's spread" in line
               for line in lines)
    assert lines[0].startswith("Every defense is above the attacked model")


def test_single_seed_says_there_is_no_spread(tmp_path):
    results = fake_results(tmp_path)
    text = summary_text(results)
    assert "single seed" in text and "--seeds N" in text
    assert results["scenarios"]["pca"]["std"]["accuracy"] is None


def test_html_is_self_contained(tmp_path):
    fake_results(tmp_path, seed_shifts=(0.0, 0.01))
    page = render_report(tmp_path)["html"].read_text()
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 4
    assert all(base64.b64decode(data).startswith(PNG_MAGIC) for data in images)
    # summary, figure 2, figure 3 for each of 2 defenses, detection, run times, time per stage
    assert page.count("<table>") == 7
    assert "± " in page  # two seeds show their spread


def test_report_refuses_a_foreign_file(tmp_path):
    (tmp_path / "results.json").write_text('{"format": "something-else"}')
    with pytest.raises(PoisonlabError, match="not a poisonlab results file"):
        render_report(tmp_path)
    with pytest.raises(PoisonlabError, match="no results.json"):
        render_report(tmp_path / "missing")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed (apt-get install chromium)")
def test_browser_renders_tables_and_decodes_every_image(tmp_path):
    fake_results(tmp_path)
    page = render_report(tmp_path)["html"].read_text()
    # a copy with a probe that writes what the browser saw into the DOM (the report itself has no scripts)
    probe = ("<script>window.addEventListener('load', () => { const imgs = [...document.images];"
             "document.body.setAttribute('data-probe', JSON.stringify({tables: document.querySelectorAll('table')"
             ".length, images: imgs.length, decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).length}));"
             "});</script>")
    probed = tmp_path / "probe.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
               probed.as_uri()]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    match = re.search(r'data-probe="([^"]+)"', dom)
    assert match, f"no probe result in the DOM dump: {dom[:300]!r}"
    seen = json.loads(match.group(1).replace("&quot;", '"'))
    assert seen["tables"] == page.count("<table>") and seen["images"] == 4 and seen["decoded"] == 4
    shot = tmp_path / "shot.png"
    subprocess.run([*command[:-2], f"--screenshot={shot}", "--window-size=1200,2000", probed.as_uri()],
                   capture_output=True, timeout=120)
    pixels = matplotlib.image.imread(shot)[..., :3]
    # a blank page is one colour; the rendered report has text, tables and plots
    assert pixels.shape[:2] == (2000, 1200) and (pixels.min(axis=2) < 0.9).mean() > 0.01


def test_verdict_says_when_the_attack_left_nothing_to_win_back(tmp_path):
    results = fake_results(tmp_path)
    scenarios = results["attacks"]["label-flip"]["scenarios"]
    scenarios["attacked"]["accuracy"] = scenarios["clean"]["accuracy"] - 0.001  # an attack that barely hurts
    scenarios["pca"]["accuracy"] = scenarios["attacked"]["accuracy"] - 0.002
    first = verdict(results, "label-flip")[0]
    assert first.startswith("Not above the attacked model") and "pca" in first
    assert "cost only 0.10 pp" in first and "--seeds N" in first
    scenarios["attacked"]["accuracy"] = scenarios["clean"]["accuracy"] - 0.05  # a real attack: no excuse
    scenarios["pca"]["accuracy"] = scenarios["attacked"]["accuracy"] - 0.002
    assert "cost only" not in verdict(results, "label-flip")[0]


# ------------------------------------------------------------------------------------------ the paper in words

CLAIM = re.compile(r"^Claim \(([abc])\), [^:]+: (supported|contradicted|cannot be decided at (\d+) seeds?)\. ")


def claims(results: dict) -> dict[str, str]:
    """Claim letter -> verdict, from the report's comparison paragraphs (each must match CLAIM)."""
    lines = [line for line in paper_comparison(results, "label-flip") if line.startswith("Claim")]
    found = {}
    for line in lines:
        match = CLAIM.match(line)
        assert match, line
        found[match.group(1)] = match.group(2)
    return found


def test_comparison_states_the_attacks_cost_and_the_classes_it_hurt(tmp_path):
    results = fake_results(tmp_path, hybrid=0.97)
    s = results["attacks"]["label-flip"]["scenarios"]
    # ours hurts class 2 only; the paper's attack hurt 2, 8, 5 and 4
    s["attacked"]["per_class_accuracy"] = [0.99, 0.99, 0.80] + [0.99] * 7
    s["attacked"]["accuracy"] = float(np.mean(s["attacked"]["per_class_accuracy"]))
    text = " ".join(paper_comparison(results, "label-flip"))
    cost = (s["clean"]["accuracy"] - s["attacked"]["accuracy"]) * 100
    paper = paper_numbers()["scenarios"]
    assert f"The attack cost our model {cost:.2f} pp of test accuracy" in text
    assert f"the paper's attack cost {paper['clean']['accuracy'] - paper['attacked']['accuracy']:.2f} pp" in text
    assert "The paper's attack hurt classes 2, 8, 5 and 4 most" in text
    assert "ours hurt class 2 (-19.00 pp) and spared 8, 5 and 4 (+0.00, +0.00 and +0.00 pp)" in text
    # every defense (96-98%) ends below our clean 99%; every one of the paper's ends above its 99.04%
    assert "all 3 of our defenses end below our clean model's 99.00%" in text
    assert "all 3 of the paper's defenses end above its clean model's 99.04%" in text
    assert set(claims(results)) == {"a", "b", "c"}


def test_comparison_only_where_the_paper_applies(tmp_path):
    for kwargs in ({"dataset": "digits"}, {"n_train": 6000}):
        results = fake_results(tmp_path, hybrid=0.97, **kwargs)
        assert not paper_applies(results, "label-flip") and paper_comparison(results, "label-flip") == []
        md = render_report(tmp_path)["markdown"].read_text()
        assert "primary: compared with the paper" not in md and "Comparison with the paper" not in md
        assert "## Attack: label-flip (primary)" in md
        for table in (summary_table(results, "label-flip"), runtime_table(results, "label-flip")):
            assert not any("Paper" in h for h in table.header)
    assert "6000-image slice" in paper_mismatch(results, "label-flip")
    fake_results(tmp_path, hybrid=0.97)
    md = render_report(tmp_path)["markdown"].read_text()
    assert "## Attack: label-flip (primary: compared with the paper)" in md and "### Comparison with the paper" in md


def set_mean(results: dict, name: str, key: str, mean: float, std: float) -> None:
    s = results["attacks"]["label-flip"]["scenarios"][name]
    s[key], s["std"][key] = mean, std


def test_claims_supported_with_a_clear_lead_over_several_seeds(tmp_path):
    results = fake_results(tmp_path, seed_shifts=(0.0, 0.01, -0.01), hybrid=0.97)
    # pca+kmeans at 99.6% +- 0.1, 0.3 pp over pca and 0.4 over kmeans; fastest by 1 s, std 0.1 s
    for name, acc, secs in (("pca+kmeans", 0.996, 3.0), ("pca", 0.993, 4.0), ("kmeans", 0.992, 5.0)):
        set_mean(results, name, "accuracy", acc, 0.001)
        set_mean(results, name, "seconds", secs, 0.1)
    assert claims(results) == {"a": "supported", "b": "supported", "c": "supported"}
    set_mean(results, "kmeans", "accuracy", 0.985, 0.001)  # kmeans below 99% by 5 of its stds
    assert claims(results)["c"] == "contradicted"
    set_mean(results, "kmeans", "seconds", 2.0, 0.1)  # kmeans now 1 s faster than the hybrid
    assert claims(results)["b"] == "contradicted"


def test_claims_undecided_inside_the_spread(tmp_path):
    results = fake_results(tmp_path, seed_shifts=(0.0, 0.01, -0.01), hybrid=0.97)
    # pca+kmeans 0.2 pp behind pca with stds of 0.5 pp; 0.1 s faster than kmeans with stds of 0.3 s
    for name, acc, secs in (("pca+kmeans", 0.991, 3.0), ("pca", 0.993, 4.0), ("kmeans", 0.990, 3.1)):
        set_mean(results, name, "accuracy", acc, 0.005)
        set_mean(results, name, "seconds", secs, 0.3)
    assert claims(results) == {"a": "cannot be decided at 3 seeds", "b": "cannot be decided at 3 seeds",
                               "c": "cannot be decided at 3 seeds"}


def test_claims_with_one_seed_judge_against_the_test_set_noise(tmp_path):
    # 1000 test images: the standard error of a 96% accuracy is 0.62 pp
    results = fake_results(tmp_path, gap=0.0, hybrid=0.93)  # 3 pp behind: more than the noise
    assert claims(results)["a"] == "contradicted" and claims(results)["c"] == "contradicted"
    results = fake_results(tmp_path, gap=0.0, hybrid=0.96)  # level with pca and kmeans
    assert claims(results)["a"] == "cannot be decided at 1 seed"
    # one seed's timing noise: the spread of the equal-work retrainings (4, 3 and 2 s): 1 s apart decides nothing
    assert claims(fake_results(tmp_path, hybrid=0.97, hybrid_seconds=3.0))["b"] == "cannot be decided at 1 seed"
    s = results["attacks"]["label-flip"]["scenarios"]
    for name, retrain in (("pca", 2.0), ("kmeans", 2.1), ("pca+kmeans", 2.2)):
        s[name]["seconds_retrain"] = retrain  # the same work in about the same time: 1 s apart decides
    assert claims(results)["b"] == "supported"
    results["config"]["retrain_budget"] = "epochs"  # retrainings of different sizes: no timing noise is known
    assert claims(results)["b"] == "cannot be decided at 1 seed"


def test_claim_verdict_rule():
    one = {"seeds": [0]}
    assert claim_verdict([(0.5, 0.1), (0.2, 0.1)], one) == "supported"
    assert claim_verdict([(0.5, 0.1), (-0.2, 0.1)], one) == "contradicted"
    assert claim_verdict([(0.5, 0.1), (0.05, 0.1)], one) == "cannot be decided at 1 seed"
    assert claim_verdict([(0.5, None)], {"seeds": [0, 1]}) == "cannot be decided at 2 seeds"


def test_an_attack_that_raised_accuracy_is_not_a_negative_cost(tmp_path):
    results = fake_results(tmp_path, hybrid=0.97)
    s = results["attacks"]["label-flip"]["scenarios"]
    s["attacked"]["accuracy"] = s["clean"]["accuracy"] + 0.0023
    s["pca"]["accuracy"] = s["attacked"]["accuracy"] - 0.001
    first = verdict(results, "label-flip")[0]
    assert "did not lower accuracy against the clean model (+0.23 pp)" in first and "nothing for a filter" in first
    assert "cost only" not in first and "-0.23" not in first
    text = " ".join(paper_comparison(results, "label-flip"))
    assert "The attack did not lower our model's test accuracy (+0.23 pp)" in text and "cost our model" not in text


def test_several_seeds_never_advise_running_several_seeds(tmp_path):
    results = fake_results(tmp_path, seed_shifts=(0.0, 0.001, -0.001))
    s = results["attacks"]["label-flip"]["scenarios"]
    s["attacked"]["accuracy"] = s["clean"]["accuracy"] - 0.001  # a weak attack: the verdict explains it
    write_json(tmp_path / "results.json", results)
    md = render_report(tmp_path)["markdown"].read_text()
    assert "little for a filter to win back" in md and "spread over 3 seeds" in md
    assert "--seeds" not in md and "--seeds" not in summary_text(results)


def test_html_keeps_option_names_on_one_line(tmp_path):
    fake_results(tmp_path)
    paths = render_report(tmp_path)
    page, md = paths["html"].read_text(), paths["markdown"].read_text()
    assert "`--seeds N`" in md  # Markdown keeps its code spans
    assert "<code>--seeds N</code>" in page and re.search(r"code\{[^}]*white-space:nowrap", page)
    assert page.count("--seeds") == page.count("<code>--seeds")  # no bare, breakable --seeds
    assert "`" not in summary_text(fake_results(tmp_path))


def test_timing_note_never_calls_a_larger_sum_part_of_the_wall_time(tmp_path):
    results = fake_results(tmp_path)
    for total, computed in ((30.0, 55.0), (30.0, 25.0)):
        results["timing"].update(total_seconds=total, computed_seconds=computed)
        note = stage_timing_table(results).note
        assert "of which" not in note and f"{total:.1f} s" in note and f"{computed:.1f} s" in note
        assert ("more than the wall time because stages overlap" in note) == (computed > total)
        assert "of which" not in summary_text(results)


# ------------------------------------------------------------------------------------------ plots

def test_per_class_plot_has_error_bars_with_several_seeds_and_a_legend_off_the_axes(tmp_path):
    one = fake_results(tmp_path)["attacks"]["label-flip"]["scenarios"]
    three = fake_results(tmp_path, seed_shifts=(0.0, 0.01, -0.01))["attacks"]["label-flip"]["scenarios"]
    for scenarios, with_bars in ((one, 0), (three, len(three))):
        fig = per_class_accuracy_figure(scenarios, CLASSES, title="t")
        ax = fig.axes[0]
        bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer) and c.has_yerr]
        assert len(bars) == with_bars
        renderer = FigureCanvasAgg(fig).get_renderer()
        legend_box, axes_box = fig.legends[0].get_window_extent(renderer), ax.get_window_extent(renderer)
        assert ax.get_legend() is None and legend_box.y1 <= axes_box.y0  # below the axes, over no marker
        low, high = ax.get_ylim()
        assert 70 < low < 80 and high <= 101  # the attacked class 2 (80%) in view, the range zoomed to the data


def test_confusion_panels_show_the_change_against_clean(tmp_path):
    scenarios = fake_results(tmp_path)["attacks"]["label-flip"]["scenarios"]
    fig = confusion_matrices_figure(scenarios, CLASSES, title="t")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == len(scenarios) and isinstance(images[0].norm, LogNorm)
    attacked = np.asarray(images[1].get_array())
    # the attack moved 19 of class 2's 100 test images to class 3: -19 pp on the diagonal, +19 pp beside it
    assert attacked[2, 2] == pytest.approx(-19.0) and attacked[2, 3] == pytest.approx(19.0)
    assert attacked[0, 0] == pytest.approx(0.0)
    norms = [image.norm for image in images[1:]]
    assert all(n is norms[0] for n in norms) and norms[0].vmin == -norms[0].vmax


def test_paper_runtimes_only_beside_a_full_mnist_run(tmp_path, monkeypatch):
    seen = []
    real = plots.runtime_and_f1
    monkeypatch.setattr(plots, "runtime_and_f1", lambda scenarios, paper, **kw: seen.append(paper) or
                        real(scenarios, paper, **kw))
    fake_results(tmp_path, n_train=6000)
    render_report(tmp_path)
    assert seen == [{}]
    results = fake_results(tmp_path)
    render_report(tmp_path)
    assert seen[-1]["pca"]["runtime_s"] == paper_numbers()["scenarios"]["pca"]["runtime_s"]
    scenarios = results["attacks"]["label-flip"]["scenarios"]
    labels = lambda fig: fig.axes[0].get_legend_handles_labels()[1]  # noqa: E731
    assert "paper" not in labels(runtime_and_f1_figure(scenarios, {}, title="t"))
    assert "paper" in labels(runtime_and_f1_figure(scenarios, paper_numbers()["scenarios"], title="t"))
