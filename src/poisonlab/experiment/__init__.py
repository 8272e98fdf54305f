"""Experiments: the config, the staged runner that executes it into a run folder, and its results.

``config`` (one validation pass, before any data is loaded), ``store`` (content-addressed stages, so runs
resume and share work), ``rundir`` (the run folder, checked before any work), ``jobs`` (training
stages), ``runner`` (the pipeline of one run), ``assemble`` (the rows of ``results.json``, whose contract
is :mod:`poisonlab.results`); ``grid`` (sweep files), ``sweep`` (a grid's cells sharing one store) and
``engines`` (where trainings run: local processes, or Ray in ``ray_engine``; the contract of
``sweep.csv`` / ``sweep.json`` is :mod:`poisonlab.sweep_results`).
"""

from poisonlab.experiment.config import (DEFAULT_DEFENSES, QUICK_SETTINGS, RETRAIN_BUDGETS, AttackSpec,
                                         ExperimentConfig, check_config, config_from_dict, load_config,
                                         paper_attacks, quick_config)
from poisonlab.experiment.engines import ENGINES, LocalEngine, make_engine
from poisonlab.experiment.grid import SweepSpec, load_sweep_spec, sweep_from_dict
from poisonlab.experiment.jobs import StageEvent
from poisonlab.experiment.rundir import check_run_dir, prepare_run_dir
from poisonlab.experiment.runner import check_attacks_fit, load_experiment_dataset, run_experiment
from poisonlab.experiment.store import StageStore
from poisonlab.experiment.sweep import plan_trainings, run_sweep

__all__ = ["AttackSpec", "DEFAULT_DEFENSES", "ENGINES", "ExperimentConfig", "LocalEngine", "QUICK_SETTINGS",
           "RETRAIN_BUDGETS", "StageEvent", "StageStore", "SweepSpec", "check_attacks_fit", "check_config",
           "check_run_dir", "config_from_dict", "load_config", "load_experiment_dataset", "load_sweep_spec",
           "make_engine", "paper_attacks", "plan_trainings", "prepare_run_dir", "quick_config", "run_experiment",
           "run_sweep", "sweep_from_dict"]
