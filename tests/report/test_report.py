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

from poisonlab._io import save_npz, write_json
from poisonlab.errors import PoisonlabError
from poisonlab.experiment import ExperimentConfig
from poisonlab.results import RESULTS_FORMAT, aggregate_scenarios
from poisonlab.report import render_report, summary_text
from poisonlab.report.tables import figure2_table, paper_numbers, verdict

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


def fake_results(run_dir: Path, *, seed_shifts=(0.0,), gap: float = 0.02, dataset: str = "mnist") -> dict:
    """results.json content with the layout of ``assemble_results``; ``gap``: pca's lead over kmeans on
    every class; ``seed_shifts``: per-seed offsets that make the spread."""
    seeds = list(range(len(seed_shifts)))
    per_seed = []
    for shift in seed_shifts:
        per_seed.append({
            "clean": scenario([0.99] * 10),
            "attacked": scenario([0.99] * 2 + [0.80] + [0.97] * 7),
            "pca": scenario([0.96 + gap + shift] * 10, seconds=5.0, f1=0.8 + shift),
            "kmeans": scenario([0.96 - shift] * 10, seconds=4.0, f1=0.7 - shift),
        })
    scenarios = {name: aggregate_scenarios([p[name] for p in per_seed]) for name in per_seed[0]}
    rng = np.random.default_rng(0)
    save_npz(run_dir / "projections" / "label-flip-seed0.npz", xy=rng.normal(size=(300, 2)).astype(np.float32),
             index=np.arange(300), labels=rng.integers(0, 10, 300), is_poison=rng.random(300) < 0.1,
             defenses=np.asarray(["pca", "kmeans"]), flagged=rng.random((2, 300)) < 0.1)
    attack = {"attack": {"name": "label-flip", "params": {"rate": 0.45, "source_class": 2, "target_class": 8},
                         "record": {}, "n_poison": 1000, "rate_of_train": 1000 / 60000},
              "scenarios": scenarios, "projections": {"0": "projections/label-flip-seed0.npz"}}
    config = ExperimentConfig().to_dict()
    config.update(seeds=seeds, dataset=dataset, defenses=["pca", "kmeans"])
    results = {"format": RESULTS_FORMAT, "poisonlab_version": "0.1.0", "created": "2026-01-01T00:00:00+00:00",
               "torch_version": "2.13.0", "machine": {"platform": "Linux", "cpu": "Test CPU", "cpu_count": 2,
                                                      "threads": 2, "python": "3.11", "precision": "bf16"},
               "config": config, "seeds": seeds,
               "dataset": {"name": dataset, "n_train": 60000, "n_test": 1000, "classes": CLASSES},
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
