"""Sweeps: the grid file and its checks, stage sharing and its counts, failed cells, stop and resume, the
sweep table contract and its report (local engine; Ray is in test_ray_engine.py)."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest

import poisonlab.experiment.runner as runner_module
from poisonlab.errors import PoisonlabError
from poisonlab.experiment.engines import LocalEngine, make_engine
from poisonlab.experiment.grid import load_sweep_spec, sweep_from_dict
from poisonlab.experiment.sweep import plan_trainings, run_sweep
from poisonlab.report.sweep import render_sweep_report
from poisonlab.sweep_results import (SWEEP_FORMAT, best_of, csv_columns, load_sweep, numbers_of, read_csv)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BASE = {"dataset": "digits", "n_train": 500, "n_test": 150, "clean_epochs": 1, "attacked_epochs": 1,
        "retrain_epochs": 1, "batch_size": 16}


def tiny(**grid) -> dict:
    """Two rates x two defenses x two seeds on 500 digits: 8 rows, at most 14 trainings (not 24)."""
    table = {"seeds": [0, 1], "defense": ["pca", "kmeans"],
             "attack": [{"name": "label-flip", "label": "flip", "params": {"rate": [0.2, 0.4]}}]}
    table.update(grid)
    return {"base": dict(BASE), "grid": table}


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    with LocalEngine(workers=0) as engine:
        result = run_sweep(sweep_from_dict(tiny()), out, engine=engine)
    return out, result


# ------------------------------------------------------------------------------------------- the grid

def test_examples_expand_to_the_documented_grids():
    quick = load_sweep_spec(EXAMPLES / "sweep-quick.toml")
    assert len(quick.cells) == 4 and quick.seeds == (0, 1)
    assert quick.columns == ("dataset", "model", "attack", "attack_name", "attack.rate", "defense")
    assert plan_trainings(quick) == {"naive": 24, "planned": 14, "clean": 2, "attacked": 4, "retrained": 8}
    rates = load_sweep_spec(EXAMPLES / "sweep-rates.toml")
    assert rates.seeds == (0, 1, 2) and {c.config.dataset for c in rates.cells} == {"mnist"}
    assert sorted({c.params["attack.rate"] for c in rates.cells}) == [0.05, 0.1, 0.2, 0.3]
    defenses = {c.params["defense"] for c in rates.cells}
    assert {"pca", "kmeans", "pca+kmeans", "dbscan", "birch"} < defenses and len(rates.cells) == 4 * len(defenses)
    assert plan_trainings(rates)["naive"] == 3 * len(rates.cells) * 3
    assert plan_trainings(rates)["planned"] == 3 + 4 * 3 + len(rates.cells) * 3


def test_list_parameters_multiply_and_includes_add_cells():
    spec = sweep_from_dict({"base": BASE, "grid": {
        "defense": ["pca"], "model": ["paper-cnn"], "clean_epochs": [1, 2],
        "attack": [{"name": "label-flip", "params": {"rate": [0.1, 0.2], "source_class": [1, 2]}}]},
        "include": [{"attack": {"name": "fgsm", "params": {"rate": 0.1, "eps": 0.5}}, "defense": "kmeans"}]})
    assert len(spec.cells) == 2 * 2 * 2 + 1
    assert {c.params["attack.source_class"] for c in spec.cells[:-1]} == {1, 2}
    last = spec.cells[-1]
    assert last.params["attack"] == "fgsm" and last.params["attack.source_class"] is None
    assert last.config.clean_epochs == 1 and last.config.defenses == ("kmeans",)
    assert spec.columns[:3] == ("dataset", "model", "clean_epochs") and "attack.eps" in spec.columns
    # fgsm's surrogate is the clean model: its attacked training depends on the clean budget
    assert plan_trainings(spec)["clean"] == 2
    assert spec.varying() == ("clean_epochs", "attack", "attack_name", "attack.rate", "attack.source_class",
                              "attack.eps", "defense")


BAD = [
    ({"bogus": 1}, "unknown key 'bogus' (known keys: base, grid, include)"),
    ({"base": {"epochz": 1}}, "unknown key 'base.epochz'"),
    ({"base": {"attacks": []}}, "'base.attacks' is not a [base] setting"),
    ({"base": {"workers": 2}}, "'base.workers' is not a [base] setting: a sweep sets it"),
    ({"base": {"clean_epochs": "two"}}, "'clean_epochs' must be a positive integer, got 'two'"),
    ({"grid": {}}, "the grid has no attack"),
    ({"grid": {"attack": []}}, "'grid.attack' must be one or more [[grid.attack]] tables"),
    ({"grid": {"defense": []}}, "'grid.defense' is an empty list"),
    ({"grid": {"defense": "pca"}}, "'grid.defense' must be a list of values, got 'pca'"),
    ({"grid": {"defense": ["pca", "pca"]}}, "'grid.defense' lists a value twice"),
    ({"grid": {"defense": ["nope"]}}, "unknown defense 'nope'"),
    ({"grid": {"dataset": "digits"}}, "'grid.dataset' must be a list of values"),
    ({"grid": {"batch_size": [64, 0]}}, "'grid.batch_size[1]': 'batch_size' must be a positive integer, got 0"),
    ({"grid": {"seeds": 0}}, "'grid.seeds' must be >= 1"),
    ({"grid": {"seeds": [-1]}}, "'seeds' must be distinct integers"),
    ({"grid": {"workers": [1]}}, "unknown key 'grid.workers'"),
    ({"grid": {"attack": [{"name": "nope"}]}}, "unknown attack 'nope'"),
    ({"grid": {"attack": [{"name": "label-flip", "params": {"rate": []}}]}},
     "'grid.attack[0].params.rate' is an empty list"),
    ({"grid": {"attack": [{"name": "label-flip", "params": {"rate": ["x"]}}]}}, "rate"),
    ({"grid": {"attack": [{"name": "label-flip", "params": {"rait": 0.1}}]}}, "unknown parameter 'rait'"),
    ({"grid": {"attack": [{"name": "label-flip", "parms": {}}]}}, "unknown key 'grid.attack[0].parms'"),
    ({"grid": {"attack": "label-flip"}}, "'grid.attack' must be one or more [[grid.attack]] tables"),
    ({"include": [{"defense": "pca"}]}, "'include[0]' needs an 'attack' table and a 'defense'"),
    ({"include": [{"attack": {"name": "label-flip", "params": {"rate": [0.1]}}, "defense": "pca"}]},
     "'include[0].attack.params.rate' is a list"),
    ({"include": [{"attack": {"name": "label-flip", "label": "flip", "params": {"rate": 0.2}}, "defense": "pca"}]},
     "repeats cell 0"),
    ({"base": {"defense_params": {"deep-knn": {"k": 5}}}}, "'base.defense_params.deep-knn' is set but"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[f"{i:02d}" for i in range(len(BAD))])
def test_bad_sweep_files_are_refused_naming_the_key(change, message):
    data = tiny()
    for key, value in change.items():  # merged into the tiny sweep's tables ({"grid": {}} empties the grid)
        data[key] = {**data[key], **value} if key in ("base", "grid") and value else value
    with pytest.raises(PoisonlabError) as info:
        sweep_from_dict(data, source="s.toml")
    assert str(info.value).startswith("s.toml: ") and message in str(info.value), str(info.value)


def test_relative_paths_are_relative_to_the_sweep_file(tmp_path):
    (tmp_path / "s.toml").write_text('[base]\ndataset = "data/mine.npz"\n[grid]\ndefense = ["pca"]\n'
                                     '[[grid.attack]]\nname = "label-flip"\n')
    spec = load_sweep_spec(tmp_path / "s.toml")
    assert spec.cells[0].config.dataset == str(tmp_path / "data" / "mine.npz")


# ------------------------------------------------------------------------------------------- running

def test_cells_share_stages_and_count_them(tiny_sweep):
    out, result = tiny_sweep
    assert result["format"] == SWEEP_FORMAT and load_sweep(out) == result
    t = result["trainings"]
    # 2 clean (one per seed) + 4 attacked (rate x seed) + at most 8 retrainings, against 3 x 8
    assert t["naive"] == 24 and t["planned"] == 14 and t["needed"] <= 14 and t["ran"] == t["needed"]
    assert t["reused"] == 0
    assert len(list(out.glob("stages/train-*/stage.json"))) == t["needed"]
    assert len(list(out.glob("stages/attack-*/stage.json"))) == 4
    rows = result["rows"]
    assert [(r["cell"], r["seed"]) for r in rows] == [(c, s) for c in range(4) for s in (0, 1)]
    for row in rows:
        assert row["status"] == "ok" and row["error"] is None
        assert row["accuracy_recovered"] == pytest.approx(row["accuracy"] - row["accuracy_attacked"])
        assert row["n_train"] == 500 - row["removed"] and row["poisons_removed"] + row["poisons_kept"] == row["n_poison"]
        assert row["n_poison"] == round(row["attack.rate"] * 500) and len(row["per_class_accuracy"]) == 10
        assert row["accuracy_clean"] > 0.5  # a model that learnt something: the numbers below mean something
    # one clean model per seed: every cell of a seed reports the same clean accuracy
    for seed in (0, 1):
        assert len({r["accuracy_clean"] for r in rows if r["seed"] == seed}) == 1
    # one attacked model per (rate, seed), shared by both defenses
    for cell in (0, 2):
        for seed in (0, 1):
            pair = [r["accuracy_attacked"] for r in rows if r["cell"] in (cell, cell + 1) and r["seed"] == seed]
            assert pair[0] == pair[1]


def test_sweep_csv_has_a_row_per_cell_and_seed(tiny_sweep):
    out, result = tiny_sweep
    table = read_csv(out / "sweep.csv")
    assert list(table[0]) == csv_columns(result["columns"]) and len(table) == 8
    assert table[0]["defense"] == "pca" and table[0]["attack.rate"] == "0.2" and table[0]["status"] == "ok"
    assert float(table[0]["accuracy"]) == result["rows"][0]["accuracy"]  # written in full
    assert json.loads(table[0]["per_class_accuracy"]) == result["rows"][0]["per_class_accuracy"]


def test_the_same_sweep_gives_the_same_numbers_and_resume_reuses_everything(tiny_sweep, tmp_path):
    out, reference = tiny_sweep
    with LocalEngine(workers=0) as engine:
        again = run_sweep(sweep_from_dict(tiny()), out, engine=engine, resume=True)
    assert numbers_of(again["rows"]) == numbers_of(reference["rows"])
    assert again["trainings"]["ran"] == 0 and again["trainings"]["reused"] == reference["trainings"]["needed"]


def test_a_stopped_sweep_resumes_with_identical_numbers(tiny_sweep, tmp_path):
    _, reference = tiny_sweep
    seen, lock = [], threading.Lock()

    def stop_at_third_detect(event):
        with lock:
            seen.append(event.stage)
            if seen.count("detect") == 3:
                raise KeyboardInterrupt

    out = tmp_path / "sweep"
    with pytest.raises(KeyboardInterrupt):
        with LocalEngine(workers=0) as engine:
            run_sweep(sweep_from_dict(tiny(seeds=[0])), out, engine=engine, before_stage=stop_at_third_detect)
    assert not (out / "sweep.csv").exists() and list(out.glob("stages/train-*/stage.json"))
    with LocalEngine(workers=0) as engine:
        resumed = run_sweep(sweep_from_dict(tiny(seeds=[0])), out, engine=engine, resume=True)
    assert numbers_of(resumed["rows"]) == numbers_of([r for r in reference["rows"] if r["seed"] == 0])
    assert resumed["trainings"]["reused"] > 0 and resumed["trainings"]["ran"] > 0


def test_worker_processes_give_the_numbers_of_in_process_training(tiny_sweep, tmp_path):
    _, reference = tiny_sweep
    with make_engine("local", workers=2) as engine:
        result = run_sweep(sweep_from_dict(tiny(seeds=[1])), tmp_path / "sweep", engine=engine)
    assert numbers_of(result["rows"]) == numbers_of([r for r in reference["rows"] if r["seed"] == 1])


def test_a_cell_that_fails_for_its_data_is_a_failed_row(tmp_path, monkeypatch):
    original = runner_module.detect_poisons

    def pca_flags_everything(detector, X, poisoned, **kwargs):
        result = original(detector, X, poisoned, **kwargs)
        if type(detector).__name__ == "PCADetector":
            result = dataclasses.replace(result, flagged=np.ones_like(result.flagged))
        return result

    monkeypatch.setattr(runner_module, "detect_poisons", pca_flags_everything)
    out = tmp_path / "sweep"
    with LocalEngine(workers=0) as engine:
        result = run_sweep(sweep_from_dict(tiny(seeds=[0])), out, engine=engine)
    failed = [r for r in result["rows"] if r["status"] == "failed"]
    assert [r["defense"] for r in failed] == ["pca", "pca"] and result["failed"] == 2
    assert all("flagged every training sample" in r["error"] and r["accuracy"] is None for r in failed)
    assert all(r["status"] == "ok" for r in result["rows"] if r["defense"] == "kmeans")
    table = read_csv(out / "sweep.csv")
    assert table[0]["status"] == "failed" and "flagged every" in table[0]["error"] and table[0]["accuracy"] == ""
    render_sweep_report(out)
    assert "Failed cells" in (out / "report.md").read_text()


def test_a_folder_with_another_sweep_is_refused_before_any_work(tiny_sweep, tmp_path):
    out, _ = tiny_sweep
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(PoisonlabError, match="holds a different sweep"):
        with LocalEngine(workers=0) as engine:
            run_sweep(sweep_from_dict(tiny(seeds=[5])), out, engine=engine)
    assert sorted(p.name for p in out.iterdir()) == before


# ------------------------------------------------------------------------------------------- report

def test_report_has_curves_tables_and_a_cautious_best_defense(tiny_sweep):
    out, _ = tiny_sweep
    paths = render_sweep_report(out)
    md = paths["markdown"].read_text()
    for text in ("Detection F1 (mean ± std over 2 seeds)", "Accuracy recovered", "Best defense",
                 "Run time per defense", "rate 0.2", "rate 0.4"):
        assert text in md, text
    pngs = sorted(p.name for p in paths["plots"].glob("sweep-*.png"))
    assert len(pngs) == 3 and any(n.endswith("-f1.png") for n in pngs) and any("recovered" in n for n in pngs)
    html = paths["html"].read_text()
    assert html.count("data:image/png;base64,") == 3 and "http" not in html.replace("http-equiv", "")


def test_best_defense_is_named_only_beyond_the_spread():
    assert best_of({"a": (0.9, 0.01), "b": (0.8, 0.01)})["named"]
    close = best_of({"a": (0.9, 0.1), "b": (0.85, 0.1)})
    assert close["best"] == "a" and close["next"] == "b" and not close["named"]
    assert not best_of({"a": (0.9, None), "b": (0.5, None)})["named"]  # one seed: no spread known
    assert best_of({"a": (0.2, 0.01), "b": (0.5, 0.01)}, higher=False)["best"] == "a"
    assert best_of({"a": (None, None)})["best"] is None


def test_a_broken_sweep_file_is_one_error(tmp_path):
    (tmp_path / "sweep.json").write_text('{"format": "poisonlab-sweep/1", "rows": 3}')
    with pytest.raises(PoisonlabError, match="malformed sweep"):
        load_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text('{"format": "other"}')
    with pytest.raises(PoisonlabError, match="not a poisonlab sweep file"):
        load_sweep(tmp_path)


def test_a_backdoor_sweep_has_attack_success_rates(tmp_path):
    grid = {"seeds": [0], "defense": ["spectral"],
            "attack": [{"name": "badnets", "params": {"rate": 0.05, "target_class": 0}},
                       {"name": "label-flip", "label": "flip", "params": {"rate": 0.2}}]}
    with LocalEngine(workers=0) as engine:
        result = run_sweep(sweep_from_dict({"base": dict(BASE), "grid": grid}), tmp_path, engine=engine)
    rows = {r["attack_name"]: r for r in result["rows"]}
    backdoor, flip = rows["badnets"], rows["label-flip"]
    assert backdoor["status"] == "ok" and "attack_success_rate" in csv_columns([])
    for key in ("attack_success_rate", "attack_success_rate_clean", "attack_success_rate_attacked", "robust_accuracy"):
        assert 0.0 <= backdoor[key] <= 1.0
        assert flip[key] is None  # not a backdoor: the column does not apply
    table = {r["attack_name"]: r for r in read_csv(tmp_path / "sweep.csv")}
    assert float(table["badnets"]["attack_success_rate"]) == backdoor["attack_success_rate"]
    assert table["label-flip"]["attack_success_rate"] == ""
