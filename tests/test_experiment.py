"""The experiment runner: config validation, the results.json layout, stage caching and resume."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from poisonlab.errors import PoisonlabError
from poisonlab.experiment import (AttackSpec, ExperimentConfig, _Runner, aggregate_scenarios, check_names,
                                  config_from_dict, load_config, load_results, run_experiment)
from poisonlab.parallel import threads_per_worker

SCENARIOS = ("clean", "attacked", "pca", "kmeans")


def tiny_config(**changes) -> ExperimentConfig:
    """Digits, 300 training images, one epoch: the whole pipeline in a few seconds."""
    base = dict(dataset="digits", n_train=300, n_test=120, clean_epochs=1, attacked_epochs=1, retrain_epochs=1,
                batch_size=64, defenses=["pca", "kmeans"], projection_samples=200, workers=0,
                attacks=[{"name": "label-flip", "params": {"rate": 0.5, "source_class": 2, "target_class": 8}}])
    base.update(changes)
    return config_from_dict(base)


def numbers_only(results: dict) -> dict:
    """results.json without what legitimately changes between runs (clock times, dates, stage timeline)."""
    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items()
                    if not k.startswith("seconds") and k not in ("created", "timing", "epoch_losses")}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj
    return strip(results)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    results = run_experiment(tiny_config(), out, progress=False)
    return out, results


# --------------------------------------------------------------------------------------------- config

def test_defaults_are_the_paper_setup():
    config = ExperimentConfig()
    assert config.dataset == "mnist" and config.model == "paper-cnn"
    assert [a.name for a in config.attacks] == ["label-flip", "fgsm"]
    assert config.attacks[1].params["eps"] == 2.0
    assert config.defenses == ("pca", "kmeans", "pca+kmeans", "dbscan", "birch")
    assert config.primary_attack == "label-flip"


def test_seeds_count_expands_and_round_trips():
    config = tiny_config(seeds=3)
    assert config.seeds == (0, 1, 2)
    assert config_from_dict(config.to_dict()) == config


@pytest.mark.parametrize("changes, key", [
    ({"epochz": 3}, "epochz"),
    ({"clean_epochs": "three"}, "clean_epochs"),
    ({"clean_epochs": 0}, "clean_epochs"),
    ({"retrain_epochs": True}, "retrain_epochs"),
    ({"lr": -1.0}, "lr"),
    ({"batch_size": 1.5}, "batch_size"),
    ({"n_train": -5}, "n_train"),
    ({"precision": "fp8"}, "precision"),
    ({"seeds": 0}, "seeds"),
    ({"seeds": [1, 1]}, "seeds"),
    ({"seeds": ["a"]}, "seeds"),
    ({"defenses": "pca"}, "defenses"),
    ({"defenses": ["pca", "clean"]}, "defenses"),
    ({"defense_params": {"birch": {}}}, "defense_params.birch"),
    ({"projection_samples": -1}, "projection_samples"),
    ({"attacks": [{"name": "label-flip", "rate": 0.1}]}, "attacks[0].rate"),
    ({"attacks": [{"params": {}}]}, "attacks[0].name"),
    ({"primary_attack": "fgsm"}, "primary_attack"),
])
def test_bad_config_names_the_key(changes, key):
    with pytest.raises(PoisonlabError, match=key.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        tiny_config(**changes)


def test_toml_file_round_trip_and_errors(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('dataset = "digits"\nseeds = 2\nretrain_epochs = 2\ndefenses = ["pca"]\n'
                    '[[attacks]]\nname = "label-flip"\nparams = { rate = 0.2 }\n'
                    '[defense_params.pca]\ncontamination = 0.1\n')
    config = load_config(good)
    assert config.seeds == (0, 1) and config.retrain_epochs == 2
    assert config.attacks == (AttackSpec("label-flip", {"rate": 0.2}),)
    assert config.defense_params == {"pca": {"contamination": 0.1}}
    bad = tmp_path / "bad.toml"
    bad.write_text('dataset = "digits"\nclean_epochs = "x"\n')
    with pytest.raises(PoisonlabError, match=r"bad\.toml: 'clean_epochs' must be a positive integer"):
        load_config(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("dataset = \n")
    with pytest.raises(PoisonlabError, match="not valid TOML"):
        load_config(broken)
    with pytest.raises(PoisonlabError, match="no such config file"):
        load_config(tmp_path / "missing.toml")


def test_unknown_attack_or_defense_fails_before_training(tmp_path):
    with pytest.raises(PoisonlabError, match="unknown defense 'nope'"):
        run_experiment(tiny_config(defenses=["nope"]), tmp_path / "a", progress=False)
    with pytest.raises(PoisonlabError, match=r"'attacks\[0\]'.*unknown attack"):
        run_experiment(tiny_config(attacks=[{"name": "nope"}], primary_attack="nope"), tmp_path / "b", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# --------------------------------------------------------------------------------------------- results

def test_results_layout(tiny_run):
    out, results = tiny_run
    assert load_results(out) == json.loads(json.dumps(results))
    entry = results["attacks"]["label-flip"]
    assert tuple(entry["scenarios"]) == SCENARIOS
    assert results["scenarios"] == entry["scenarios"]
    assert results["seeds"] == [0] and results["config"]["dataset"] == "digits"
    assert {"platform", "cpu", "threads"} <= set(results["machine"]) and results["torch_version"]
    n_poison = entry["attack"]["n_poison"]
    assert n_poison > 0
    for name in SCENARIOS:
        s = entry["scenarios"][name]
        assert 0 <= s["accuracy"] <= 1
        assert len(s["per_class_accuracy"]) == len(s["per_class_misclassification"]) == 10
        np.testing.assert_allclose(np.add(s["per_class_accuracy"], s["per_class_misclassification"]), 1.0)
        assert np.asarray(s["confusion_matrix"]).sum() == results["dataset"]["n_test"]
        assert len(s["per_seed"]) == 1 and s["seconds"] >= 0
    assert entry["scenarios"]["attacked"]["n_train"] == entry["scenarios"]["clean"]["n_train"] == 300
    for name in ("pca", "kmeans"):
        s = entry["scenarios"][name]
        assert s["seconds"] == pytest.approx(s["seconds_features"] + s["seconds_detect"] + s["seconds_retrain"],
                                             abs=2e-3)
        assert s["n_poison"] == n_poison and s["poisons_removed"] + s["poisons_kept"] == n_poison
        assert s["removed"] == s["poisons_removed"] + s["clean_removed"]
        assert s["n_train"] == 300 - s["removed"]
        assert {"precision", "recall", "f1", "roc_auc"} <= set(s)
    stages = [t["stage"] for t in results["timing"]["stages"]]
    assert stages.count("clean") == 1 and stages.count("features") == 1 and stages.count("retrain") == 2


def test_projection_file(tiny_run):
    out, results = tiny_run
    rel = results["attacks"]["label-flip"]["projections"]["0"]
    with np.load(out / rel, allow_pickle=False) as npz:
        assert npz["xy"].shape == (200, 2)
        assert list(npz["defenses"]) == ["pca", "kmeans"]
        assert npz["flagged"].shape == (2, 200) and npz["flagged"].dtype == bool
        assert npz["is_poison"].dtype == bool and len(np.unique(npz["index"])) == 200


def test_interrupted_run_resumes_with_identical_numbers(tiny_run, tmp_path, monkeypatch):
    _, reference = tiny_run
    out = tmp_path / "run"
    real = _Runner.detect_stage
    calls = []

    def interrupt_second_detection(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(_Runner, "detect_stage", interrupt_second_detection)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny_config(), out, progress=False)
    assert not (out / "results.json").exists()
    monkeypatch.setattr(_Runner, "detect_stage", real)
    resumed = run_experiment(tiny_config(), out, resume=True, progress=False)
    assert numbers_only(resumed) == numbers_only(json.loads(json.dumps(reference)))
    cached = {(t["stage"], t["defense"]): t["cached"] for t in resumed["timing"]["stages"]}
    assert cached[("clean", None)] and cached[("attacked", None)] and cached[("detect", "pca")]
    assert cached[("retrain", "pca")] and not cached[("detect", "kmeans")]


def test_worker_processes_give_the_same_numbers_every_time(tmp_path):
    """Two trainings side by side in spawned workers: the schedule changes nothing in the numbers."""
    config = tiny_config(workers=2, attacks=[
        {"name": "label-flip", "params": {"rate": 0.5, "source_class": 2, "target_class": 8}},
        {"name": "fgsm", "params": {"rate": 0.2, "eps": 0.5}}])
    first = run_experiment(config, tmp_path / "a", progress=False)
    second = run_experiment(config, tmp_path / "b", progress=False)
    assert numbers_only(first) == numbers_only(second)
    assert set(first["attacks"]) == {"label-flip", "fgsm"}
    stages = [(t["stage"], t["attack"], t["defense"]) for t in first["timing"]["stages"]]
    assert stages.count(("retrain", "fgsm", "kmeans")) == 1 and ("clean", None, None) in stages
    # the retrainings got the attacked model's number of steps ("steps" budget), not fewer
    attacked = first["attacks"]["label-flip"]["scenarios"]["attacked"]["n_train"]
    steps = -(-attacked // 64)
    for name in ("pca", "kmeans"):
        folder = next((tmp_path / "a" / "stages").glob("train-*"))
        assert folder.is_dir()
    records = [json.loads(p.read_text()) for p in (tmp_path / "a" / "stages").glob("train-*/stage.json")]
    assert all(r["steps"] == steps for r in records)
    # the run's last training (nothing queued behind it) gets every core, the others their worker's share
    share = threads_per_worker(2)
    assert sorted(r["threads"] for r in records) == [share] * (len(records) - 1) + [max(share, os.cpu_count() or 1)]


def test_run_folder_with_another_config_needs_force(tiny_run, tmp_path):
    out, _ = tiny_run
    other = tiny_config(retrain_epochs=2)
    with pytest.raises(PoisonlabError, match="different experiment.*--force"):
        run_experiment(other, out, progress=False)
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(PoisonlabError, match="not a poisonlab run"):
        run_experiment(other, stranger, progress=False)


def test_identical_filters_share_one_retraining(tmp_path):
    # the same detector twice (distinct labels are not needed: defense_params pin identical behaviour)
    config = tiny_config(defenses=["pca", "kmeans"], defense_params={"pca": {"contamination": 0.0},
                                                                     "kmeans": {"contamination": 0.0}},
                         projection_samples=0)
    results = run_experiment(config, tmp_path / "run", progress=False)
    scenarios = results["scenarios"]
    assert scenarios["pca"]["removed"] == scenarios["kmeans"]["removed"] == 0
    # nothing removed and equal epochs: the retraining is the attacked model's training
    assert scenarios["pca"]["accuracy"] == scenarios["kmeans"]["accuracy"] == scenarios["attacked"]["accuracy"]
    retrains = [t for t in results["timing"]["stages"] if t["stage"] == "retrain"]
    assert all(t["cached"] for t in retrains)
    assert results["attacks"]["label-flip"]["projections"] == {}


# --------------------------------------------------------------------------------------------- seeds

def test_aggregate_mean_std_and_per_seed():
    seeds = [{"accuracy": 0.9, "per_class_accuracy": [1.0, 0.8], "f1": None, "confusion_matrix": [[1, 0], [0, 1]]},
             {"accuracy": 0.8, "per_class_accuracy": [0.6, 0.8], "f1": 0.5, "confusion_matrix": [[1, 0], [1, 0]]}]
    agg = aggregate_scenarios(seeds)
    assert agg["accuracy"] == pytest.approx(0.85)
    assert agg["std"]["accuracy"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    assert agg["per_class_accuracy"] == pytest.approx([0.8, 0.8])
    assert agg["std"]["per_class_accuracy"][1] == pytest.approx(0.0)
    assert agg["f1"] == 0.5 and agg["std"]["f1"] is None
    assert agg["confusion_matrix"] == [[1.0, 0.0], [0.5, 0.5]]
    assert agg["per_seed"] == seeds
    single = aggregate_scenarios(seeds[:1])
    assert single["accuracy"] == 0.9 and single["std"]["accuracy"] is None


def test_two_seeds_report_spread(tmp_path):
    results = run_experiment(tiny_config(seeds=2, defenses=["pca"], projection_samples=0), tmp_path / "run",
                             progress=False)
    s = results["scenarios"]["pca"]
    assert results["seeds"] == [0, 1] and len(s["per_seed"]) == 2
    assert s["accuracy"] == pytest.approx(np.mean([p["accuracy"] for p in s["per_seed"]]))
    assert s["std"]["accuracy"] == pytest.approx(np.std([p["accuracy"] for p in s["per_seed"]], ddof=1))


EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_configs_are_valid(path):
    config = load_config(path)
    check_names(config)
    assert config.primary_attack in [a.label for a in config.attacks]


def test_paper_example_is_the_reproduce_default():
    assert load_config(Path(__file__).resolve().parents[1] / "examples" / "paper.toml") == ExperimentConfig()


def test_primary_attack_defaults_to_the_first_without_label_flip():
    config = tiny_config(attacks=[{"name": "fgsm", "params": {"rate": 0.1}}])
    assert config.primary_attack == "fgsm"


def fgsm_config():
    return tiny_config(attacks=[{"name": "fgsm", "params": {"rate": 0.3, "eps": 2.0}}], defenses=["kmeans"])


@pytest.fixture(scope="module")
def fgsm_reference(tmp_path_factory):
    return run_experiment(fgsm_config(), tmp_path_factory.mktemp("fgsm"), progress=False)


@pytest.mark.parametrize("stage", ["attack_stage", "features_stage"])
def test_resume_reloads_saved_models(fgsm_reference, tmp_path, monkeypatch, stage):
    # interrupted right before a stage that needs a model trained earlier: the resumed run must read its
    # weights back from safetensors (the clean surrogate for FGSM, the attacked model for activations)
    def interrupt(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_Runner, stage, interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(fgsm_config(), tmp_path, progress=False)
    monkeypatch.undo()
    resumed = run_experiment(fgsm_config(), tmp_path, resume=True, progress=False)
    assert numbers_only(resumed) == numbers_only(json.loads(json.dumps(fgsm_reference)))
    assert resumed["timing"]["stages"][0]["cached"]


def test_targeted_attack_reports_target_success_per_scenario(tmp_path):
    """Gradient matching in a config: every scenario says how many targets landed in their adversarial
    class (clean: the base rate), the per-target predictions agree with it, and a resumed run agrees."""
    from poisonlab.report import render_report

    config = tiny_config(attacks=[
        {"name": "label-flip", "params": {"rate": 0.5, "source_class": 2, "target_class": 8}},
        {"name": "gradient-matching", "params": {"budget": 0.05, "targets": 3, "restarts": 1, "steps": 4}}])
    results = run_experiment(config, tmp_path / "run", progress=False)
    entry = results["attacks"]["gradient-matching"]
    targets = entry["targets"]["0"]
    assert len(targets["indices"]) == 3 and set(targets["predicted"]) == {"clean", "attacked", "pca", "kmeans"}
    adversarial = np.asarray(targets["adversarial_classes"])
    for name, scenario in entry["scenarios"].items():
        hits = np.asarray(targets["predicted"][name]) == adversarial
        assert scenario["target_success_rate"] == pytest.approx(hits.mean())
    assert targets["true_labels"] != targets["adversarial_classes"]
    # untargeted attacks get no target metrics, not even through the clean scenario they share
    assert all("target_success_rate" not in s for s in results["attacks"]["label-flip"]["scenarios"].values())
    assert "targets" not in results["attacks"]["label-flip"] or not results["attacks"]["label-flip"]["targets"]
    report = (render_report(tmp_path / "run")["markdown"]).read_text()
    assert "Targets in adversarial class" in report
    again = run_experiment(config, tmp_path / "run", resume=True, progress=False)
    assert numbers_only(again) == numbers_only(results)
