"""The run folder: refused before any work when it cannot take the config, then recorded in ``config.json``."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from poisonlab._io import check_output, write_json
from poisonlab.errors import PoisonlabError
from poisonlab.experiment.config import ExperimentConfig

Log = Callable[[str], None]


def check_run_dir(out: str | os.PathLike, config: ExperimentConfig, *, resume: bool, force: bool) -> bool:
    """Refuse a run folder that cannot take ``config``, writing nothing; whether its old stages are to be
    discarded. Without ``resume`` a non-empty folder must hold the same config (or ``force`` is needed);
    with ``resume`` matching stages are reused whatever the config was."""
    out = check_output(out, folder=True)
    if not (out.exists() and any(out.iterdir())) or resume:
        return False
    held = _read_json(out / "config.json")
    if held != _config_json(config) and not force:
        what = "a different experiment" if held is not None else "files that are not a poisonlab run"
        raise PoisonlabError(f"{out} holds {what}; use --resume to reuse its matching stages, --force to "
                             "start over, or another --out")
    return held is not None or force


def prepare_run_dir(out: str | os.PathLike, config: ExperimentConfig, *, resume: bool, force: bool,
                    log: Log | None = None) -> Path:
    """Check the run folder (:func:`check_run_dir`), discard old stages if so, record ``config.json``."""
    out = Path(out)
    discard = check_run_dir(out, config, resume=resume, force=force)
    wanted = _config_json(config)
    if resume and _read_json(out / "config.json") not in (None, wanted):
        (log or (lambda message: None))(f"{out} held another config; reusing only the stages whose inputs match")
    if discard:
        shutil.rmtree(out / "stages", ignore_errors=True)
        shutil.rmtree(out / "projections", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", wanted)
    return out


def _config_json(config: ExperimentConfig) -> Any:
    """The config as ``config.json`` holds it (JSON types: lists, not tuples)."""
    return json.loads(json.dumps(config.to_dict()))


def _read_json(path: Path) -> Any:
    """The JSON in ``path``, or ``None`` when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


__all__ = ["check_run_dir", "prepare_run_dir"]
