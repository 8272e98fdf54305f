"""The results.json contract: aggregation over seeds and reading a file back, without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from poisonlab.errors import PoisonlabError
from poisonlab.results import RESULTS_FORMAT, aggregate_scenarios, load_results, mean_std


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


def test_one_value_has_no_spread():
    assert mean_std([0.5]) == (0.5, None)
    assert mean_std([None, 0.5, 0.7])[0] == pytest.approx(0.6)
    assert mean_std([[0.5, 1.0]]) == ([0.5, 1.0], [None, None])


def minimal_results(**changes) -> dict:
    scenario = {"accuracy": 0.9, "per_class_accuracy": [0.8, 1.0], "confusion_matrix": [[4, 1], [0, 5]]}
    results = {"format": RESULTS_FORMAT, "config": {}, "seeds": [0], "primary_attack": "a",
               "dataset": {"name": "d", "n_train": 10, "n_test": 10, "classes": ["x", "y"]},
               "attacks": {"a": {"attack": {}, "scenarios": {"clean": scenario, "attacked": dict(scenario)}}}}
    results.update(changes)
    return results


@pytest.mark.parametrize("changes, problem", [
    ({"format": "other/1"}, "not a poisonlab results file"),
    ({"attacks": []}, "'attacks' must be a dict"),
    ({"primary_attack": "b"}, "'primary_attack'"),
    ({"dataset": {"name": "d", "n_train": 10, "n_test": 10, "classes": "xy"}}, "dataset.classes"),
    ({"dataset": {"name": "d", "n_train": "ten", "n_test": 10, "classes": ["x", "y"]}}, "dataset.n_train"),
    ({"attacks": {"a": {"attack": {}, "scenarios": {"clean": {}}}}}, "no 'attacked' scenario"),
    ({"attacks": {"a": {"attack": {}, "scenarios": {
        "clean": {"accuracy": "high", "per_class_accuracy": [1, 1], "confusion_matrix": [[1, 0], [0, 1]]},
        "attacked": {"accuracy": 1, "per_class_accuracy": [1, 1], "confusion_matrix": [[1, 0], [0, 1]]}}}}},
     "clean.accuracy"),
    ({"attacks": {"a": {"attack": {}, "scenarios": {
        "clean": {"accuracy": 1, "per_class_accuracy": [1], "confusion_matrix": [[1, 0], [0, 1]]},
        "attacked": {"accuracy": 1, "per_class_accuracy": [1, 1], "confusion_matrix": [[1, 0], [0, 1]]}}}}},
     "per_class_accuracy"),
])
def test_malformed_results_are_one_clear_error(tmp_path, changes, problem):
    assert load_results(_write(tmp_path, minimal_results())) is not None
    with pytest.raises(PoisonlabError, match=problem):
        load_results(_write(tmp_path, minimal_results(**changes)))


def test_unreadable_results(tmp_path):
    with pytest.raises(PoisonlabError, match="no results.json"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(PoisonlabError, match="cannot read results"):
        load_results(tmp_path)


def test_results_and_report_need_no_torch():
    """A report is rendered from results.json alone: neither the results contract nor the report imports
    torch or the experiment runner."""
    code = ("import sys, poisonlab.results, poisonlab.report; "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('poisonlab.experiment')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def _write(folder, results) -> object:
    path = folder / "results.json"
    path.write_text(json.dumps(results))
    return path
