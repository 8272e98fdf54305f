"""Small builders shared by several test modules (on the path through pytest's ``pythonpath``)."""

from __future__ import annotations

from poisonlab.experiment import ExperimentConfig, config_from_dict


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
