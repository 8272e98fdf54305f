"""The experiment config: a frozen dataclass, checked in one pass before any data is loaded.

Each scalar setting's type comes from its annotation and its range or choices from its field's metadata,
so a TOML value of the wrong type and an out-of-range value get the same one-line message naming the
key. Attack and detector names and every one of their parameters are checked here too (through the
attacks' ``check_params`` and the detectors' ``check_params``), so a bad ``eps`` fails at once, not after
the clean model has trained.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poisonlab.attacks import ATTACKS, LABEL_FLIP_PAPER_PRESET, make_attack
from poisonlab.defenses import DETECTORS, make_detector
from poisonlab.defenses.features import FEATURE_KINDS
from poisonlab.errors import PoisonlabError
from poisonlab.models import MODEL_NAMES
from poisonlab.parallel import auto_workers
from poisonlab.results import BASELINE_SCENARIOS
from poisonlab.schedules import check_optimizer
from poisonlab.seeding import MAX_SEED, check_seed
from poisonlab.training import AUGMENTATIONS, DEVICES, OPTIMIZERS, PRECISIONS, SCHEDULES, TTAS, TrainConfig

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

DEFAULT_DEFENSES: tuple[str, ...] = ("pca", "kmeans", "pca+kmeans", "dbscan", "birch")
# ``retrain_budget``: the attacked model's optimizer steps, or ``retrain_epochs`` passes over the filtered set
RETRAIN_BUDGETS: tuple[str, ...] = ("steps", "epochs")
# --quick: a stratified slice and one epoch per training, for tests and demos
QUICK_SETTINGS: dict[str, Any] = dict(n_train=6000, n_test=1000, clean_epochs=1, attacked_epochs=1,
                                      retrain_epochs=1, projection_samples=1000)


@dataclass(frozen=True)
class AttackSpec:
    """One attack of an experiment.

    Parameters
    ----------
    name : str
        A registered attack name (``"label-flip"``, ``"fgsm"``, ...).
    params : dict
        Keyword arguments of :func:`poisonlab.attacks.make_attack`.
    label : str
        Its key in ``results["attacks"]`` (default: ``name``); lets one experiment hold two scenarios of
        the same attack.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params), "label": self.label}


def paper_attacks() -> tuple[AttackSpec, ...]:
    """The paper's two attacks: the label-flip preset closest to its Figure 2, and FGSM at eps = 2.0."""
    return (AttackSpec("label-flip", dict(LABEL_FLIP_PAPER_PRESET)),
            AttackSpec("fgsm", {"rate": 0.1, "eps": 2.0}))


def _rule(default: Any, **rule: Any) -> Any:
    """A field whose metadata holds its range (``minimum``, ``interval``, open unless ``closed_low``) or
    ``choices``."""
    return field(default=default, metadata=rule)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides an experiment's numbers. Defaults are the paper's setup (MNIST, the
    paper CNN, label flipping and FGSM, PCA / KMeans / PCA+KMeans plus DBSCAN and BIRCH).

    Parameters
    ----------
    dataset : str
        ``"mnist"``, ``"fashion-mnist"``, ``"digits"`` or a path to an ``.npz`` (see ``load_dataset``).
    data_dir : str or None
        A folder with the four IDX files, tried first.
    n_train, n_test : int or None
        Class-stratified slice sizes (``None``: the whole split), drawn with ``subset_seed``.
    subset_seed : int
        Seeds the slice; fixed across ``seeds`` so that the spread measures training and attack noise.
    model : str
        A name from :data:`poisonlab.models.MODEL_NAMES`.
    clean_epochs, attacked_epochs, retrain_epochs : int
        Epochs of the clean model, of the model trained on the poisoned set, and of each defense's
        retraining on its filtered set. Equal budgets keep Figures 2 and 3 fair: a shorter retraining
        resists label noise better and would flatter every defense.
    batch_size, lr, weight_decay, optimizer, schedule, label_smoothing, precision, augment, tta, device :
        As in :class:`poisonlab.training.TrainConfig` (``augment="auto"``: crop and flip for colour images
        only; ``device="auto"``: CUDA when a GPU is present).
    seeds : tuple of int
        The experiment repeats once per seed (training, attack sampling, detector randomness).
    attacks : tuple of AttackSpec
    primary_attack : str
        The attack label whose scenarios are compared with the paper (``results["scenarios"]``); when a
        config file does not name one: ``"label-flip"`` if present, else the first attack.
    defenses : tuple of str
        Registered detector names.
    defense_params : dict
        ``{defense: {param: value}}`` passed to :func:`poisonlab.defenses.make_detector`.
    features : str
        Feature space of the detectors (``"activations"``: the attacked model's penultimate layer).
    projection_samples : int
        Training points in the saved 2-D view of the feature space (0: none).
    retrain_budget : str
        ``"steps"`` (default): each retraining takes as many optimizer steps as ``retrain_epochs`` passes
        over the whole poisoned set, however many samples its defense removed, so a defense is not
        judged on a shorter training; ``"epochs"``: ``retrain_epochs`` passes over the filtered set.
    workers : int or None
        Training processes run side by side (0: every training in this process; ``None``: one per core
        up to 4, see :mod:`poisonlab.parallel`). Part of the numbers' recipe: the thread count of a
        training changes its floating-point sums.
    """

    dataset: str = _rule("mnist", nonempty=True)
    data_dir: str | None = None
    n_train: int | None = _rule(None, minimum=1)
    n_test: int | None = _rule(None, minimum=1)
    subset_seed: int = _rule(0, minimum=0)
    model: str = _rule("paper-cnn", choices=MODEL_NAMES)
    clean_epochs: int = _rule(1, minimum=1)
    attacked_epochs: int = _rule(1, minimum=1)
    retrain_epochs: int = _rule(1, minimum=1)
    batch_size: int = _rule(128, minimum=1)
    lr: float = _rule(5e-3, interval=(0.0, 10.0))
    weight_decay: float = _rule(0.0, interval=(0.0, 1.0), closed_low=True)
    optimizer: str = _rule("adam", choices=OPTIMIZERS)
    schedule: str = _rule("one-cycle", choices=SCHEDULES)
    label_smoothing: float = _rule(0.0, interval=(0.0, 1.0), closed_low=True)
    precision: str = _rule("auto", choices=PRECISIONS)
    augment: str = _rule("auto", choices=AUGMENTATIONS)
    tta: str = _rule("auto", choices=TTAS)
    device: str = _rule("auto", choices=DEVICES)
    seeds: tuple[int, ...] = (0,)
    attacks: tuple[AttackSpec, ...] = field(default_factory=paper_attacks)
    primary_attack: str = "label-flip"
    defenses: tuple[str, ...] = DEFAULT_DEFENSES
    defense_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    features: str = _rule("activations", choices=FEATURE_KINDS)
    projection_samples: int = _rule(3000, minimum=0)
    retrain_budget: str = _rule("steps", choices=RETRAIN_BUDGETS)
    workers: int | None = _rule(None, minimum=0)

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["seeds"] = list(self.seeds)
        out["defenses"] = list(self.defenses)
        out["attacks"] = [a.to_dict() for a in self.attacks]
        out["defense_params"] = {k: dict(v) for k, v in self.defense_params.items()}
        return out

    def train_config(self, *, epochs: int, seed: int, steps: int | None = None) -> TrainConfig:
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, lr=self.lr, seed=seed, model=self.model,
                           precision=self.precision, steps=steps, augment=self.augment, device=self.device,
                           weight_decay=self.weight_decay, optimizer=self.optimizer,
                           label_smoothing=self.label_smoothing, tta=self.tta, schedule=self.schedule)

    def resolved_workers(self) -> int:
        return auto_workers() if self.workers is None else self.workers

    def replace(self, **changes: Any) -> "ExperimentConfig":
        """A copy with ``changes`` (checked like :func:`config_from_dict`)."""
        merged = self.to_dict()
        merged.update(changes)
        return config_from_dict(merged)


def quick_config(**changes: Any) -> ExperimentConfig:
    """The ``--quick`` setup: a stratified 6,000 / 1,000 slice and one epoch per training."""
    return ExperimentConfig().replace(**{**QUICK_SETTINGS, **changes})


_FIELDS = {f.name: f for f in dataclasses.fields(ExperimentConfig)}
_HINTS = typing.get_type_hints(ExperimentConfig)
_SCALARS = tuple(name for name, hint in _HINTS.items()
                 if typing.get_origin(hint) not in (tuple, Mapping) and name != "attacks")
_ATTACK_KEYS = ("name", "params", "label")


def _scalar_kind(name: str) -> tuple[type, bool]:
    """The scalar type of a setting and whether it may be ``None``."""
    hint = _HINTS[name]
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    return next(a for a in args if a is not type(None)), type(None) in args


def _describe(name: str) -> str:
    kind, _ = _scalar_kind(name)
    rule = _FIELDS[name].metadata
    if "choices" in rule:
        return f"one of {', '.join(rule['choices'])}"
    if kind is int:
        return {None: "an integer", 0: "a non-negative integer", 1: "a positive integer"}.get(
            rule.get("minimum"), f"an integer >= {rule.get('minimum')}")
    if kind is float:
        low, high = rule.get("interval", (-math.inf, math.inf))
        return f"a number in {'[' if rule.get('closed_low') else '('}{low:g}, {high:g})"
    return "a non-empty string" if rule.get("nonempty") else "a string"


def _check_scalar(name: str, value: Any) -> Any:
    """``value`` as the setting ``name`` takes it (ints become floats for float settings), or an error."""
    kind, optional = _scalar_kind(name)
    rule = _FIELDS[name].metadata
    if value is None and optional:
        return value
    ok = False
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        ok = rule.get("minimum") is None or value >= rule["minimum"]
    elif kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = rule.get("interval", (-math.inf, math.inf))
        ok = math.isfinite(value) and (low <= value if rule.get("closed_low") else low < value) and value < high
        value = float(value)
    elif kind is str and isinstance(value, str):
        ok = (value in rule["choices"]) if "choices" in rule else bool(value) or not rule.get("nonempty")
    if not ok:
        raise PoisonlabError(f"{name!r} must be {_describe(name)}, got {value!r}")
    return value


def config_from_dict(data: Mapping[str, Any], *, source: str = "config") -> ExperimentConfig:
    """Build and check a config from plain data (a parsed TOML file or ``to_dict()`` output).

    Raises :class:`PoisonlabError` naming the key for unknown keys, wrong types and out-of-range values,
    and for unknown or mis-set attacks and defenses. ``seeds`` may be a count (``3`` -> ``[0, 1, 2]``)
    or a list.
    """
    if not isinstance(data, Mapping):
        raise PoisonlabError(f"{source}: expected a table of settings")
    try:
        return ExperimentConfig(**_typed_values(data))
    except PoisonlabError as exc:
        raise PoisonlabError(f"{source}: {exc}") from None


def _typed_values(data: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        raise PoisonlabError(f"unknown key {unknown[0]!r} (known keys: {', '.join(_FIELDS)})")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SCALARS:
            values[key] = _check_scalar(key, value)
        elif key == "seeds":
            values[key] = _seeds(value)
        elif key == "defenses":
            if isinstance(value, str) or not isinstance(value, (list, tuple)) \
                    or any(not isinstance(d, str) for d in value):
                raise PoisonlabError(f"'defenses' must be a list of defense names, got {value!r}")
            values[key] = tuple(value)
        elif key == "attacks":
            if not isinstance(value, (list, tuple)):
                raise PoisonlabError(f"'attacks' must be a list of tables, got {value!r}")
            values[key] = tuple(_attack_from_data(a, i) for i, a in enumerate(value))
        elif key == "defense_params":
            if not isinstance(value, Mapping):
                raise PoisonlabError(f"'defense_params' must be a table of tables, got {value!r}")
            for name, params in value.items():
                if not isinstance(params, Mapping):
                    raise PoisonlabError(f"'defense_params.{name}' must be a table of parameters")
            values[key] = {k: dict(v) for k, v in value.items()}
    if "attacks" in values:
        labels = [a.label for a in values["attacks"]]
        # without an explicit choice the paper's attack is primary when present, else the first one
        if "primary_attack" not in values and labels and ExperimentConfig.primary_attack not in labels:
            values["primary_attack"] = labels[0]
    return values


def _seeds(value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise PoisonlabError(f"'seeds' must be >= 1 when it is a count, got {value}")
        return tuple(range(value))
    if not isinstance(value, (list, tuple)) or not value \
            or any(isinstance(s, bool) or not isinstance(s, int) for s in value):
        raise PoisonlabError(f"'seeds' must be a count or a non-empty list of integers, got {value!r}")
    return tuple(value)


def _attack_from_data(data: Any, index: int) -> AttackSpec:
    where = f"attacks[{index}]"
    if isinstance(data, AttackSpec):
        return data
    if not isinstance(data, Mapping):
        raise PoisonlabError(f"{where!r} must be a table with 'name' and 'params'")
    unknown = sorted(set(data) - set(_ATTACK_KEYS))
    if unknown:
        raise PoisonlabError(f"unknown key '{where}.{unknown[0]}' (known keys: {', '.join(_ATTACK_KEYS)})")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise PoisonlabError(f"'{where}.name' must be an attack name, got {name!r}")
    params = data.get("params", {})
    if not isinstance(params, Mapping):
        raise PoisonlabError(f"'{where}.params' must be a table, got {params!r}")
    label = data.get("label", "")
    if not isinstance(label, str):
        raise PoisonlabError(f"'{where}.label' must be a string, got {label!r}")
    return AttackSpec(name=name, params=dict(params), label=label)


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Read an experiment config from a TOML file (keys as in :class:`ExperimentConfig`). Relative paths
    in it (``dataset`` when it names a file, ``data_dir``) are relative to the file's folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PoisonlabError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PoisonlabError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PoisonlabError(f"{path}: not valid TOML: {exc}") from None
    for key in ("dataset", "data_dir"):
        value = data.get(key)
        if isinstance(value, str) and value and _is_path(value, key) and not Path(value).expanduser().is_absolute():
            data[key] = str(path.parent / value)
    return config_from_dict(data, source=str(path))


def _is_path(value: str, key: str) -> bool:
    """``data_dir`` is always a path; ``dataset`` is one when it is not a dataset name."""
    return key == "data_dir" or value.endswith(".npz") or "/" in value or os.sep in value


def check_config(c: ExperimentConfig) -> None:
    """The one validation pass: every setting's type and range, their consistency, and every attack's and
    defense's name and parameters. Each error names the key."""
    for name in _SCALARS:
        value = _check_scalar(name, getattr(c, name))
        if value is not getattr(c, name):
            object.__setattr__(c, name, value)  # an int given for a float setting
    if not c.seeds or len(set(c.seeds)) != len(c.seeds) \
            or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED for s in c.seeds):
        raise PoisonlabError(f"'seeds' must be distinct integers in 0..{MAX_SEED}, got {list(c.seeds)!r}")
    check_seed(c.subset_seed, "'subset_seed'")
    try:
        check_optimizer(c.schedule, c.optimizer)
    except PoisonlabError as exc:
        raise PoisonlabError(f"'schedule': {exc}") from None
    if len(set(c.defenses)) != len(c.defenses):
        raise PoisonlabError(f"'defenses' lists a defense twice: {list(c.defenses)!r}")
    reserved = [d for d in c.defenses if d in BASELINE_SCENARIOS]
    if reserved:
        raise PoisonlabError(f"'defenses': {reserved[0]!r} is a scenario name, not a defense")
    extra = sorted(set(c.defense_params) - set(c.defenses))
    if extra:
        raise PoisonlabError(f"'defense_params.{extra[0]}' is set but {extra[0]!r} is not in 'defenses'")
    if not c.attacks:
        raise PoisonlabError("'attacks' must list at least one attack")
    labels = [a.label for a in c.attacks]
    if len(set(labels)) != len(labels):
        raise PoisonlabError(f"'attacks': two attacks share the label {labels!r}; give each a 'label'")
    if c.primary_attack not in labels:
        raise PoisonlabError(f"'primary_attack' is {c.primary_attack!r} but the attacks are {labels!r}")
    for i, spec in enumerate(c.attacks):
        try:
            ATTACKS.check_name(spec.name)
        except PoisonlabError as exc:
            raise PoisonlabError(f"'attacks[{i}].name': {exc}") from None
        try:
            make_attack(spec.name, **spec.params)
        except PoisonlabError as exc:
            raise PoisonlabError(f"'attacks[{i}].params' ({spec.label}): {exc}") from None
    for name in c.defenses:
        try:
            DETECTORS.check_name(name)
        except PoisonlabError as exc:
            raise PoisonlabError(f"'defenses': {exc}") from None
        try:
            make_detector(name, **c.defense_params.get(name, {}))
        except PoisonlabError as exc:
            raise PoisonlabError(f"'defense_params.{name}': {exc}") from None


__all__ = ["AttackSpec", "DEFAULT_DEFENSES", "ExperimentConfig", "QUICK_SETTINGS", "RETRAIN_BUDGETS",
           "check_config", "config_from_dict", "load_config", "paper_attacks", "quick_config"]
