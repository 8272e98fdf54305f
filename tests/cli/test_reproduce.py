"""``poisonlab reproduce``, ``run`` and ``report`` from the command line, on tiny digits runs."""

from __future__ import annotations

import json

import pytest

from poisonlab.cli import main

TINY_TOML = """\
dataset = "digits"
n_train = 300
n_test = 120
clean_epochs = 1
attacked_epochs = 1
retrain_epochs = 1
batch_size = 64
defenses = ["pca", "kmeans"]
projection_samples = 200

[[attacks]]
name = "label-flip"
params = { rate = 0.5, source_class = 2, target_class = 8 }
"""


@pytest.fixture()
def config_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("poisonlab: error: ")
    return err[0]


def test_run_writes_results_and_report_then_resumes(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(config_file), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "Summary: label-flip" in printed and "kmeans" in printed and "Wall time of the run" in printed
    results = json.loads((out / "results.json").read_text())
    assert set(results["scenarios"]) == {"clean", "attacked", "pca", "kmeans"}
    assert (out / "report.md").is_file() and (out / "report.html").is_file()

    # another config in the same folder: one line, nothing overwritten
    assert main(["run", str(config_file), "--out", str(out), "--retrain-epochs", "2", "--quiet"]) == 2
    assert "--force" in one_error_line(capsys)
    assert json.loads((out / "results.json").read_text())["config"]["retrain_epochs"] == 1

    assert main(["run", str(config_file), "--out", str(out), "--resume", "--quiet"]) == 0
    resumed = json.loads((out / "results.json").read_text())
    assert all(t["cached"] for t in resumed["timing"]["stages"])
    assert resumed["scenarios"]["kmeans"]["accuracy"] == results["scenarios"]["kmeans"]["accuracy"]

    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").is_file()


@pytest.mark.parametrize("toml, key", [
    ("clean_epochz = 1\n", "clean_epochz"),
    ("clean_epochs = 'one'\n", "clean_epochs"),
    ("retrain_epochs = 0\n", "retrain_epochs"),
    ("seeds = -2\n", "seeds"),
    ("[[attacks]]\nname = 'label-flip'\nstrength = 3\n", "attacks[0].strength"),
])
def test_bad_config_is_one_line_naming_the_key(tmp_path, capsys, toml, key):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert key in line and str(path) in line
    assert not (tmp_path / "out").exists()


def test_cli_flags_are_checked(tmp_path, capsys):
    assert main(["reproduce", "--out", str(tmp_path / "o"), "--dataset", "digits", "--defenses", "pca,nope"]) == 2
    assert "unknown defense 'nope'" in one_error_line(capsys)
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "--out", str(tmp_path / "o"), "--resume", "--force"])
    assert exc.value.code == 2
    assert "not allowed with argument --resume" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such run folder" in one_error_line(capsys)


def test_reproduce_quick_on_digits_runs_both_paper_attacks(tmp_path, capsys):
    out = tmp_path / "repro"
    code = main(["reproduce", "--quick", "--dataset", "digits", "--subset", "300", "120", "--defenses", "pca",
                 "--out", str(out), "--quiet"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results["attacks"]) == ["label-flip", "fgsm"]
    assert results["config"]["clean_epochs"] == results["config"]["retrain_epochs"] == 1
    fgsm = results["attacks"]["fgsm"]
    assert fgsm["attack"]["params"]["eps"] == 2.0 and fgsm["attack"]["n_poison"] > 0
    assert set(fgsm["scenarios"]) == {"clean", "attacked", "pca"}
    assert "Summary: fgsm" in capsys.readouterr().out


def test_a_bad_attack_parameter_fails_before_anything_runs(tmp_path, capsys):
    """FGSM eps = -1 is refused while the config is read: no data loaded, no model trained, no folder made."""
    path = tmp_path / "bad.toml"
    path.write_text('[[attacks]]\nname = "label-flip"\nparams = { rate = 0.1 }\n'
                    '[[attacks]]\nname = "fgsm"\nparams = { eps = -1 }\n')
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert "'attacks[1].params' (fgsm): eps must be a positive number, got -1" in line and str(path) in line
    assert not (tmp_path / "out").exists()
    assert main(["reproduce", "--out", str(tmp_path / "out"), "--defenses", "pca", "--dataset", "digits",
                 "--subset", "300", "120", "--quiet", "--workers", "-1"]) == 2
    assert "'workers' must be a non-negative integer" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()
