"""The experiment config: one validation pass, types from the dataclass, names and parameters checked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from helpers import tiny_config

from poisonlab.errors import PoisonlabError
from poisonlab.experiment import AttackSpec, ExperimentConfig, config_from_dict, load_config


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
    ({"model": "resnet9000"}, "model"),
    ({"features": "sift"}, "features"),
    ({"workers": -1}, "workers"),
    ({"workers": "two"}, "workers"),
    ({"retrain_budget": "minutes"}, "retrain_budget"),
    ({"optimizer": "lamb"}, "optimizer"),
    ({"weight_decay": -1e-4}, "weight_decay"),
    ({"label_smoothing": 1.0}, "label_smoothing"),
    ({"tta": "five-crop"}, "tta"),
    ({"attacks": [{"name": "nope"}], "primary_attack": "nope"}, "attacks[0].name"),
    ({"attacks": [{"name": "fgsm", "params": {"eps": -1}}]}, "attacks[0].params"),
    ({"attacks": [{"name": "fgsm", "params": {"epz": 1}}]}, "attacks[0].params"),
    ({"attacks": [{"name": "label-flip", "params": {"rate": "lots"}}]}, "attacks[0].params"),
    ({"attacks": [{"name": "gradient-matching", "params": {"eps": 16}}]}, "attacks[0].params"),
    ({"defenses": ["nope"]}, "defenses"),
    ({"defense_params": {"pca": {"n_components": "lots"}}}, "defense_params.pca"),
    ({"defense_params": {"pca": {"contamination": 0.9}}}, "defense_params.pca"),
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


# experiment configs; sweep-*.toml are sweep files (tests/cli/test_sweep.py checks those)
EXAMPLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "examples").glob("*.toml")
                  if not p.name.startswith("sweep-"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_configs_are_valid(path):
    config = load_config(path)  # names and every parameter are checked on load
    assert config.primary_attack in [a.label for a in config.attacks]


def test_paper_example_is_the_reproduce_default():
    assert load_config(Path(__file__).resolve().parents[2] / "examples" / "paper.toml") == ExperimentConfig()


def test_primary_attack_defaults_to_the_first_without_label_flip():
    config = tiny_config(attacks=[{"name": "fgsm", "params": {"rate": 0.1}}])
    assert config.primary_attack == "fgsm"


def test_a_bad_attack_parameter_fails_when_the_config_is_made():
    """Attack and detector parameters are checked with the config, before any data or training exists."""
    with pytest.raises(PoisonlabError, match=r"'attacks\[1\]\.params' \(fgsm\): eps must be a positive number, got -1"):
        ExperimentConfig(attacks=(AttackSpec("label-flip", {"rate": 0.1}), AttackSpec("fgsm", {"eps": -1})))
    with pytest.raises(PoisonlabError, match="n_components"):
        ExperimentConfig(defenses=("pca",), defense_params={"pca": {"n_components": "abc"}})


def test_scalar_types_come_from_the_dataclass():
    """Every scalar setting refuses a value of the wrong type with the same message as an out-of-range one."""
    scalars = [f.name for f in dataclasses.fields(ExperimentConfig)
               if f.name not in ("seeds", "attacks", "defenses", "defense_params", "data_dir", "primary_attack")]
    for name in scalars:
        with pytest.raises(PoisonlabError, match=f"'{name}' must be"):
            config_from_dict({name: [1]})
    assert config_from_dict({"lr": 1}).lr == 1.0 and isinstance(config_from_dict({"lr": 1}).lr, float)
    assert ExperimentConfig(lr=1).lr == 1.0


def test_recipe_settings_reach_the_training():
    config = config_from_dict({"optimizer": "sgd", "weight_decay": 5e-4, "label_smoothing": 0, "tta": "none"})
    assert config.label_smoothing == 0.0  # a closed lower end: 0 is allowed, and an int becomes a float
    cfg = config.train_config(epochs=2, seed=1)
    assert (cfg.optimizer, cfg.weight_decay, cfg.label_smoothing, cfg.tta) == ("sgd", 5e-4, 0.0, "none")


def test_relative_paths_in_a_toml_are_relative_to_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "exp.toml").write_text('dataset = "data/mine.npz"\ndata_dir = "idx"\n')
    monkeypatch.chdir(tmp_path)
    config = load_config(folder / "exp.toml")
    assert config.dataset == str(folder / "data" / "mine.npz") and config.data_dir == str(folder / "idx")
    (folder / "named.toml").write_text('dataset = "digits"\n')
    assert load_config(folder / "named.toml").dataset == "digits"


def test_seeds_must_fit_every_library():
    with pytest.raises(PoisonlabError, match="'seeds' must be distinct integers in 0..4294967295"):
        config_from_dict({"seeds": [2**32]})
    with pytest.raises(PoisonlabError, match="subset_seed"):
        config_from_dict({"subset_seed": 2**40})


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_every_example_config_loads(path):
    from poisonlab.experiment.grid import load_sweep_spec
    from poisonlab.models import RECIPES
    if path.startswith("sweep"):
        assert load_sweep_spec(EXAMPLES / path) is not None
        return
    config = load_config(EXAMPLES / path)
    assert config.attacks and config.defenses
    if path == "cifar10.toml":  # the fast net with its own recipe
        recipe = RECIPES[config.model]
        train = config.train_config(epochs=config.clean_epochs, seed=0)
        assert all(getattr(train, key) == value for key, value in recipe.items()), recipe
