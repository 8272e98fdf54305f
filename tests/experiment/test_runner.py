"""The experiment runner: the results.json layout, stage caching, resume, workers, seeds, targeted attacks."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import numbers_only, tiny_config

from poisonlab.data import load_dataset
from poisonlab.errors import PoisonlabError, PoisonlabWarning
from poisonlab.experiment import StageEvent, run_experiment
from poisonlab.parallel import threads_per_worker
from poisonlab.report import render_report
from poisonlab.results import load_results

SCENARIOS = ("clean", "attacked", "pca", "kmeans")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    results = run_experiment(tiny_config(), out, progress=False)
    return out, results


def test_unknown_attack_or_defense_fails_before_training():
    # the config refuses them when it is made: no run can start with them
    with pytest.raises(PoisonlabError, match="unknown defense 'nope'"):
        tiny_config(defenses=["nope"])
    with pytest.raises(PoisonlabError, match=r"'attacks\[0\]\.name'.*unknown attack"):
        tiny_config(attacks=[{"name": "nope"}], primary_attack="nope")


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
        # the threshold-free views reach results.json (and so the report), not only `poisonlab detect`
        assert 0 <= s["average_precision"] <= 1 and 0 <= s["f1_at_true_rate"] <= 1
        assert len(s["pr_precision"]) == len(s["roc_tpr"]) == 101
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


def interrupt_at(stage: str, nth: int = 1):
    """A ``before_stage`` hook that stops the run (as Ctrl-C would) when the ``nth`` ``stage`` is about to start."""
    seen: list[StageEvent] = []

    def hook(event: StageEvent) -> None:
        seen.append(event)
        if sum(e.stage == stage for e in seen) == nth:
            raise KeyboardInterrupt

    hook.seen = seen  # type: ignore[attr-defined]
    return hook


def test_before_stage_sees_every_stage_in_order(tmp_path):
    events: list[StageEvent] = []
    run_experiment(tiny_config(projection_samples=0), tmp_path / "run", progress=False, before_stage=events.append)
    assert [(e.stage, e.attack, e.defense) for e in events] == [
        ("clean", None, None), ("attack", "label-flip", None), ("attacked", "label-flip", None),
        ("features", "label-flip", None), ("detect", "label-flip", "pca"), ("retrain", "label-flip", "pca"),
        ("detect", "label-flip", "kmeans"), ("retrain", "label-flip", "kmeans")]
    assert {e.seed for e in events} == {0}


def test_interrupted_run_resumes_with_identical_numbers(tiny_run, tmp_path):
    _, reference = tiny_run
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_experiment(tiny_config(), out, progress=False, before_stage=interrupt_at("detect", 2))
    assert not (out / "results.json").exists()
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


def test_two_seeds_report_spread(tmp_path):
    results = run_experiment(tiny_config(seeds=2, defenses=["pca"], projection_samples=0), tmp_path / "run",
                             progress=False)
    s = results["scenarios"]["pca"]
    assert results["seeds"] == [0, 1] and len(s["per_seed"]) == 2
    assert s["accuracy"] == pytest.approx(np.mean([p["accuracy"] for p in s["per_seed"]]))
    assert s["std"]["accuracy"] == pytest.approx(np.std([p["accuracy"] for p in s["per_seed"]], ddof=1))


def fgsm_config():
    return tiny_config(attacks=[{"name": "fgsm", "params": {"rate": 0.3, "eps": 2.0}}], defenses=["kmeans"])


@pytest.fixture(scope="module")
def fgsm_reference(tmp_path_factory):
    return run_experiment(fgsm_config(), tmp_path_factory.mktemp("fgsm"), progress=False)


@pytest.mark.parametrize("stage", ["attack", "features"])
def test_resume_reloads_saved_models(fgsm_reference, tmp_path, stage):
    # interrupted right before a stage that needs a model trained earlier: the resumed run must read its
    # weights back from safetensors (the clean surrogate for FGSM, the attacked model for activations)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(fgsm_config(), tmp_path, progress=False, before_stage=interrupt_at(stage))
    resumed = run_experiment(fgsm_config(), tmp_path, resume=True, progress=False)
    assert numbers_only(resumed) == numbers_only(json.loads(json.dumps(fgsm_reference)))
    assert resumed["timing"]["stages"][0]["cached"]


def test_targeted_attack_reports_target_success_per_scenario(tmp_path):
    """Gradient matching in a config: every scenario says how many targets landed in their adversarial
    class (clean: the base rate), the per-target predictions agree with it, and a resumed run agrees."""
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


def test_backdoor_attack_reports_attack_success_per_scenario(tmp_path):
    """BadNets in a config: every scenario (clean: the base rate) gains the attack success rate and robust
    accuracy, an untargeted attack beside it does not, the report shows them, and a resumed run agrees."""
    config = tiny_config(attacks=[{"name": "badnets", "params": {"rate": 0.1, "target_class": 0}},
                                  {"name": "label-flip", "params": {"rate": 0.1}}],
                         defenses=["spectral", "activation-clustering"], projection_samples=0)
    results = run_experiment(config, tmp_path / "run", progress=False)
    entry = results["attacks"]["badnets"]
    assert entry["attack"]["backdoor"] == {"target_class": 0, "source_class": None,
                                           "n_triggered": int(results["dataset"]["n_test"] * 0.9)}
    for name in ("clean", "attacked", "spectral", "activation-clustering"):
        scenario = entry["scenarios"][name]
        assert 0 <= scenario["attack_success_rate"] <= 1 and 0 <= scenario["robust_accuracy"] <= 1
        assert scenario["attack_success_rate"] + scenario["robust_accuracy"] <= 1
        assert scenario["per_seed"][0]["attack_success_rate"] == scenario["attack_success_rate"]
    assert all("attack_success_rate" not in s for s in results["attacks"]["label-flip"]["scenarios"].values())
    assert list((tmp_path / "run" / "stages").glob("backdoor-*"))
    markdown = render_report(tmp_path / "run")["markdown"].read_text()
    assert "Backdoor: attack success (badnets)" in markdown and "badnets-attack-success.png" in markdown
    assert "label-flip-attack-success.png" not in markdown
    again = run_experiment(config, tmp_path / "run", resume=True, progress=False)
    assert numbers_only(again) == numbers_only(results)


def test_sleeper_agent_by_name_uses_the_clean_model_and_reports_attack_success(tmp_path):
    """A clean-label backdoor in a config: the clean model is its surrogate (retrained as its own kind), labels
    stay, and every scenario gains the ASR on the source class's triggered test images."""
    config = tiny_config(attacks=[{"name": "sleeper-agent", "params": {
        "rate": 0.05, "target_class": 1, "source_class": 7, "steps": 4, "retrains": 1, "surrogate_epochs": 1,
        "source_samples": 20}}], defenses=["spectral"], projection_samples=0)
    results = run_experiment(config, tmp_path / "run", progress=False)
    entry = results["attacks"]["sleeper-agent"]
    assert entry["attack"]["backdoor"]["target_class"] == 1 and entry["attack"]["backdoor"]["source_class"] == 7
    for name in ("clean", "attacked", "spectral"):
        assert 0 <= entry["scenarios"][name]["attack_success_rate"] <= 1
    stage = next((tmp_path / "run" / "stages").glob("attack-*"))
    record = json.loads((stage / "stage.json").read_text())["attack"]
    assert record["surrogate_model"] == "paper-cnn" and len(record["retrain_seconds"]) == 1
    with np.load(stage / "arrays.npz", allow_pickle=False) as npz:
        poisons_labels, n_poison = npz["y_train"][npz["is_poison"]], int(npz["is_poison"].sum())
    assert n_poison == record["n_poison"] > 0 and set(poisons_labels.tolist()) == {1}   # clean label: target images


def test_projection_sample_is_not_the_attack_draw(tmp_path):
    """The plotted sample draws from its own stream: its poison share is close to the attack's, for every
    attack (with the attack's own stream it was a subset of the poisons: all poisons)."""
    config = tiny_config(projection_samples=280, defenses=["pca"], attacks=[
        {"name": "label-flip", "params": {"rate": 0.2}}, {"name": "fgsm", "params": {"rate": 0.2, "eps": 0.5}}])
    results = run_experiment(config, tmp_path / "run", progress=False)
    for label, entry in results["attacks"].items():
        with np.load(tmp_path / "run" / entry["projections"]["0"], allow_pickle=False) as npz:
            share = npz["is_poison"].mean()
        assert abs(share - entry["attack"]["rate_of_train"]) <= 0.02, (label, share)


def test_more_workers_than_cores_is_a_warning(tmp_path):
    config = tiny_config(workers=(os.cpu_count() or 1) + 1)
    with pytest.warns(PoisonlabWarning, match="share the cores"), pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path / "run", progress=False, before_stage=interrupt_at("clean"))


def test_nothing_is_written_when_the_data_does_not_fit(tmp_path):
    """An attack that cannot work on the data (a class it lacks) fails before the run folder exists."""
    config = tiny_config(attacks=[{"name": "label-flip", "params": {"rate": 0.5, "source_class": 2,
                                                                    "target_class": 8}}], n_train=None, n_test=None,
                         dataset=str(_four_class_npz(tmp_path)))
    with pytest.raises(PoisonlabError, match=r"'attacks\[0\]' label-flip .* does not fit .*4 classes"):
        run_experiment(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def _four_class_npz(folder):
    ds = load_dataset("digits").subset(300, 120, seed=0)
    train, test = ds.y_train < 4, ds.y_test < 4
    path = folder / "four.npz"
    np.savez(path, x_train=ds.x_train[train], y_train=ds.y_train[train], x_test=ds.x_test[test],
             y_test=ds.y_test[test])
    return path
