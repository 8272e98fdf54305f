"""Sweep files: a grid of experiments, checked in one pass before any data is loaded.

A sweep file is TOML with up to three tables::

    [base]          # settings every cell shares: the keys of a `poisonlab run` config, except those the grid
    dataset = "mnist"  # owns (attacks, defenses, seeds, primary_attack) and those a sweep sets itself
    clean_epochs = 1   # (workers: the engine's; projection_samples: 0)

    [grid]          # the axes; every combination is a cell
    seeds = 3                       # or [0, 1, 2]: every cell runs under every seed (a row per cell and seed)
    defense = ["pca", "deep-knn"]   # one defense per cell
    model = ["paper-cnn"]           # dataset, model, or any other setting of [base], as a list of values

    [[grid.attack]]                 # one table per attack; a list-valued parameter is an axis of its own,
    name = "label-flip"             # so a table gives the product of its lists
    label = "uniform-flip"
    params = { rate = [0.05, 0.1, 0.2, 0.3] }

    [[include]]                     # explicit cells after the product: an attack, a defense, and settings
    attack = { name = "fgsm", params = { rate = 0.1, eps = 2.0 } }    # (the rest from [base])
    defense = "pca"

Every cell becomes an :class:`~poisonlab.experiment.ExperimentConfig` with one attack and one defense, so
each one is checked the way `poisonlab run` checks a config, and every error names its place in the file.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from poisonlab.errors import PoisonlabError
from poisonlab.experiment.config import ExperimentConfig, config_from_dict

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

SWEEP_KEYS = ("base", "grid", "include")
# keys of an experiment config that the grid owns, and those a sweep sets for every cell
GRID_OWNED = ("attacks", "defenses", "seeds", "primary_attack")
SWEEP_SET = {"workers": 0, "projection_samples": 0}
SETTINGS = tuple(k for k in ExperimentConfig.__dataclass_fields__ if k not in GRID_OWNED and k not in SWEEP_SET)
SCALAR_AXES = tuple(k for k in SETTINGS if k != "defense_params")
ATTACK_KEYS = ("name", "label", "params")
_OWNED_HINTS = {"attacks": "put [[grid.attack]] tables in [grid]", "defenses": "put 'defense = [...]' in [grid]",
                "seeds": "put 'seeds' in [grid]", "primary_attack": "every cell has one attack"}


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its parameters as the table's columns show them, and its experiment
    (one attack, one defense, every seed of the sweep)."""

    index: int
    params: dict[str, Any]
    config: ExperimentConfig

    def describe(self, varying: tuple[str, ...] | None = None) -> str:
        """``uniform-flip rate=0.1 / pca``, then the other axes' values (those in ``varying``, default all)."""
        attack = self.params["attack"] + "".join(f" {k.split('.', 1)[1]}={v}" for k, v in self.params.items()
                                                 if k.startswith("attack.") and v is not None)
        others = [f"{k}={v}" for k, v in self.params.items()
                  if k not in ("attack", "attack_name", "defense") and not k.startswith("attack.")
                  and (varying is None or k in varying)]
        return " ".join([f"{attack} / {self.params['defense']}", *others])


@dataclass(frozen=True)
class SweepSpec:
    """A checked sweep: its cells in grid order, the sweep's seeds, and the parameter columns (dataset,
    model, the other axes, attack, attack name, attack parameters, defense)."""

    cells: tuple[Cell, ...]
    seeds: tuple[int, ...]
    columns: tuple[str, ...]
    source: dict[str, Any]  # the file's tables as read (paths made absolute), for sweep.json and --resume

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps({"sweep": self.source, "seeds": list(self.seeds),
                                      "columns": list(self.columns)}))

    def varying(self) -> tuple[str, ...]:
        """The columns whose value is not the same in every cell."""
        return tuple(c for c in self.columns
                     if len({json.dumps(cell.params[c]) for cell in self.cells}) > 1)


def load_sweep_spec(path: str | os.PathLike) -> SweepSpec:
    """Read and check a sweep file (see the module docstring). Relative paths in it (a dataset file or
    folder, ``data_dir``) are relative to the file's folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PoisonlabError(f"{path}: no such sweep file") from None
    except IsADirectoryError:
        raise PoisonlabError(f"{path}: is a folder; give a sweep file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PoisonlabError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PoisonlabError(f"{path}: not valid TOML: {exc}") from None
    return sweep_from_dict(data, source=str(path), folder=path.parent)


def sweep_from_dict(data: Mapping[str, Any], *, source: str = "sweep", folder: Path | None = None) -> SweepSpec:
    """Check a parsed sweep file and expand it into cells; a :class:`PoisonlabError` naming the key otherwise."""
    try:
        return _expand(data, folder)
    except PoisonlabError as exc:
        raise PoisonlabError(f"{source}: {exc}") from None


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise PoisonlabError(f"'{where}' must be a table, got {value!r}")
    return dict(value)


def _unknown(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    extra = [k for k in table if k not in known]
    if extra:
        prefix = f"{where}." if where else ""
        raise PoisonlabError(f"unknown key '{prefix}{extra[0]}' (known keys: {', '.join(known)})")


def _values(value: Any, where: str) -> list[Any]:
    """An axis: a non-empty list of distinct values."""
    if not isinstance(value, list):
        raise PoisonlabError(f"'{where}' must be a list of values, got {value!r}")
    if not value:
        raise PoisonlabError(f"'{where}' is an empty list: the grid would have no cells")
    keys = [json.dumps(v, sort_keys=True) for v in value]
    if len(set(keys)) != len(keys):
        raise PoisonlabError(f"'{where}' lists a value twice: {value!r}")
    return value


def _absolute(key: str, value: Any, folder: Path | None) -> Any:
    """A relative dataset path or data_dir, made relative to the sweep file's folder."""
    if folder is None or not isinstance(value, str) or not value:
        return value
    is_path = key == "data_dir" or value.endswith(".npz") or "/" in value or os.sep in value
    return str(folder / value) if is_path and not Path(value).expanduser().is_absolute() else value


def _check(settings: dict[str, Any], where: str) -> ExperimentConfig:
    try:
        return config_from_dict(settings)
    except PoisonlabError as exc:
        raise PoisonlabError(f"{where}: {str(exc).removeprefix('config: ')}") from None


def _expand(data: Mapping[str, Any], folder: Path | None) -> SweepSpec:
    data = _table(data, "sweep file")
    _unknown(data, SWEEP_KEYS, "")
    base = _table(data.get("base", {}), "base")
    for key in base:
        if key in GRID_OWNED or key in SWEEP_SET:
            raise PoisonlabError(f"'base.{key}' is not a [base] setting: {_OWNED_HINTS.get(key, 'a sweep sets it')}")
    _unknown(base, SETTINGS, "base")
    base = {k: _absolute(k, v, folder) for k, v in base.items()}
    defense_params = _table(base.pop("defense_params", {}), "base.defense_params")
    _check(base, "[base]")
    grid = _table(data.get("grid", {}), "grid")
    _unknown(grid, ("seeds", "attack", "defense", *SCALAR_AXES), "grid")
    seeds = _seeds(grid.get("seeds", [0]))
    axes = {k: [_absolute(k, v, folder) for v in _values(grid[k], f"grid.{k}")] for k in grid if k in SCALAR_AXES}
    for key, values in axes.items():
        for i, value in enumerate(values):
            _check({**base, key: value}, f"'grid.{key}[{i}]'")
    if "attack" not in grid:
        raise PoisonlabError("the grid has no attack: add a [[grid.attack]] table (name, params)")
    if not isinstance(grid["attack"], list) or not grid["attack"]:
        raise PoisonlabError("'grid.attack' must be one or more [[grid.attack]] tables")
    attacks = [a for i, table in enumerate(grid["attack"]) for a in _attack_product(table, f"grid.attack[{i}]")]
    if "defense" not in grid:
        raise PoisonlabError("the grid has no defense: add 'defense = [...]' to [grid]")
    defenses = _values(grid["defense"], "grid.defense")
    extra = sorted(set(defense_params) - set(defenses) - _include_defenses(data))
    if extra:
        raise PoisonlabError(f"'base.defense_params.{extra[0]}' is set but {extra[0]!r} is in no cell")
    points = [({**dict(zip(axes, values))}, attack, defense)
              for values in itertools.product(*axes.values()) for attack in attacks for defense in defenses]
    includes = data.get("include", [])
    if not isinstance(includes, list):
        raise PoisonlabError("'include' must be [[include]] tables")
    for i, table in enumerate(includes):
        points.append(_include_point(table, f"include[{i}]", folder))
    settings_axes = list(dict.fromkeys([*axes, *(k for p in points for k in p[0])]))
    param_names = list(dict.fromkeys(k for _, attack, _ in points for k in attack["params"]))
    columns = ("dataset", "model", *(k for k in settings_axes if k not in ("dataset", "model")), "attack",
               "attack_name", *(f"attack.{k}" for k in param_names), "defense")
    cells, seen = [], {}
    for index, (settings, attack, defense) in enumerate(points):
        where = f"cell {index} ({attack['label']} / {defense})"
        config = _check({**base, **settings, "attacks": [attack], "defenses": [defense], "seeds": list(seeds),
                         "defense_params": {defense: defense_params[defense]} if defense in defense_params else {},
                         "primary_attack": attack["label"], **SWEEP_SET}, where)
        params = {"dataset": config.dataset, "model": config.model,
                  **{k: getattr(config, k) for k in settings_axes if k not in ("dataset", "model")},
                  "attack": attack["label"], "attack_name": attack["name"],
                  **{f"attack.{k}": attack["params"].get(k) for k in param_names}, "defense": defense}
        identity = json.dumps(config.to_dict(), sort_keys=True)
        if identity in seen:
            raise PoisonlabError(f"{where} repeats cell {seen[identity]}")
        seen[identity] = index
        cells.append(Cell(index, params, config))
    source = {"base": {**base, **({"defense_params": defense_params} if defense_params else {})},
              "grid": {k: (axes[k] if k in axes else v) for k, v in grid.items()}, "include": includes}
    return SweepSpec(tuple(cells), seeds, columns, source)


def _seeds(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise PoisonlabError(f"'grid.seeds' must be >= 1 when it is a count, got {value}")
        return tuple(range(value))
    values = _values(value, "grid.seeds")
    _check({"seeds": values}, "'grid.seeds'")
    return tuple(values)


def _attack_product(table: Any, where: str) -> list[dict[str, Any]]:
    """The attacks of one [[grid.attack]] table: the product of its list-valued parameters."""
    table = _table(table, where)
    _unknown(table, ATTACK_KEYS, where)
    name, label = table.get("name"), table.get("label", table.get("name"))
    if not isinstance(name, str) or not name:
        raise PoisonlabError(f"'{where}.name' must be an attack name, got {name!r}")
    if not isinstance(label, str) or not label:
        raise PoisonlabError(f"'{where}.label' must be a non-empty string, got {label!r}")
    params = _table(table.get("params", {}), f"{where}.params")
    lists = {k: _values(v, f"{where}.params.{k}") for k, v in params.items() if isinstance(v, list)}
    fixed = {k: v for k, v in params.items() if k not in lists}
    out = []
    for values in itertools.product(*lists.values()):
        chosen = {k: params[k] if k in fixed else values[list(lists).index(k)] for k in params}
        attack = {"name": name, "label": label, "params": chosen}
        _check({"attacks": [attack], "primary_attack": label, "defenses": []},
               f"'{where}'" + (f" with {chosen}" if lists else ""))
        out.append(attack)
    return out


def _include_defenses(data: Mapping[str, Any]) -> set[str]:
    includes = data.get("include", [])
    return {t.get("defense") for t in includes if isinstance(t, Mapping) and isinstance(t.get("defense"), str)} \
        if isinstance(includes, list) else set()


def _include_point(table: Any, where: str, folder: Path | None) -> tuple[dict[str, Any], dict[str, Any], str]:
    """An explicit cell: its settings, its one attack (scalar parameters) and its defense."""
    table = _table(table, where)
    _unknown(table, ("attack", "defense", *SCALAR_AXES), where)
    if "attack" not in table or "defense" not in table:
        raise PoisonlabError(f"'{where}' needs an 'attack' table and a 'defense'")
    attack = _table(table["attack"], f"{where}.attack")
    listed = [k for k, v in _table(attack.get("params", {}), f"{where}.attack.params").items() if isinstance(v, list)]
    if listed:
        raise PoisonlabError(f"'{where}.attack.params.{listed[0]}' is a list: an included cell takes one value")
    (one,) = _attack_product(attack, f"{where}.attack")
    defense = table["defense"]
    if not isinstance(defense, str) or not defense:
        raise PoisonlabError(f"'{where}.defense' must be a defense name, got {defense!r}")
    settings = {k: _absolute(k, v, folder) for k, v in table.items() if k in SCALAR_AXES}
    return settings, one, defense


__all__ = ["Cell", "SweepSpec", "load_sweep_spec", "sweep_from_dict"]
