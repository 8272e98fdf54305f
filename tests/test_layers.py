"""The package's shape: imports run down the layers only, no cycles, imports at module top, small modules,
and a public API at the top level."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import poisonlab

SRC = Path(poisonlab.__file__).resolve().parent

# data -> models -> training -> attacks/defenses -> experiment -> report -> cli, over a base every layer may use
LAYERS = {
    "poisonlab": 0, "poisonlab.errors": 0, "poisonlab._io": 0, "poisonlab.registry": 0, "poisonlab.results": 0,
    "poisonlab.sweep_results": 0,
    "poisonlab.data": 1, "poisonlab.models": 2, "poisonlab.augment": 3, "poisonlab.inference": 3,
    "poisonlab.training": 3, "poisonlab.schedules": 3,
    "poisonlab.parallel": 3,
    "poisonlab.attacks": 4, "poisonlab.defenses": 4, "poisonlab.experiment": 5, "poisonlab.validation": 5,
    "poisonlab.report": 6, "poisonlab.cli": 7,
}
# parts that may import nothing but the base and themselves (the report is rendered from results.json alone)
ONLY = {"poisonlab.report"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def part_of(module: str) -> str:
    """The layer entry a module belongs to (its longest prefix in LAYERS)."""
    return max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len)


def imports_of(module: str) -> list[tuple[str, ast.stmt]]:
    """poisonlab modules imported by ``module`` (``from pkg import name`` counts as the submodule when
    ``name`` is one, else as ``pkg`` itself), with the statement."""
    tree = ast.parse(MODULES[module].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node) for a in node.names if a.name.startswith("poisonlab")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("poisonlab"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.append((sub if sub in MODULES else node.module, node))
    return found


def test_imports_run_down_the_layers_only():
    upward = []
    for module in MODULES:
        mine = part_of(module)
        for target, node in imports_of(module):
            theirs = part_of(target)
            allowed = theirs == mine or LAYERS[theirs] == 0 or (mine not in ONLY and LAYERS[theirs] <= LAYERS[mine])
            if not allowed:
                upward.append(f"{module}:{node.lineno} imports {target}")
    assert not upward, upward


def test_attacks_and_defenses_do_not_import_each_other():
    crossing = [f"{m} imports {t}" for m in MODULES for t, _ in imports_of(m)
                if {part_of(m), part_of(t)} == {"poisonlab.attacks", "poisonlab.defenses"}]
    assert not crossing, crossing


def test_no_import_cycle():
    graph = {m: {t for t, _ in imports_of(m) if t in MODULES and t != m} for m in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


# deferred on purpose: matplotlib (plots) costs every command's start-up half a second, for a report only
DEFERRED = {("poisonlab.report.render", "poisonlab.report"), ("poisonlab.report.sweep", "poisonlab.report")}
# modules loaded by name at run time (importlib), each for a reason: the top-level API resolves its names on
# first use (so that the report needs no torch), and the ray engine is loaded only when asked for, because
# Ray is an optional extra that poisonlab must start and work without. Nothing else imports Ray.
BY_NAME = {"poisonlab": "the lazy API", "poisonlab.experiment.engines": "poisonlab.experiment.ray_engine"}
RAY_MODULES = {"poisonlab.experiment.ray_engine"}


def test_imports_are_at_module_top():
    local = [f"{m}:{node.lineno}" for m, path in MODULES.items() for fn in ast.walk(ast.parse(path.read_text()))
             if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
             for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))
             and (m, getattr(node, "module", None)) not in DEFERRED]
    assert not local, local


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small(module):
    assert len(MODULES[module].read_text().splitlines()) <= 500


def test_only_the_ray_engine_imports_ray_and_only_by_name():
    by_name = {m for m, path in MODULES.items() for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Attribute) and node.attr == "import_module"}
    assert by_name == set(BY_NAME), by_name
    ray_users = {m for m, path in MODULES.items() for node in ast.walk(ast.parse(path.read_text()))
                 if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "ray" for a in node.names)
                 or isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ray"}
    assert ray_users == RAY_MODULES, ray_users
    assert not [m for m in MODULES if any(t in RAY_MODULES for t, _ in imports_of(m))]  # by name only
    code = ("import sys, poisonlab.cli, poisonlab.experiment.sweep, poisonlab.experiment.engines; "
            "assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_report_imports_neither_torch_nor_the_runner():
    code = ("import sys, poisonlab.report; "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('poisonlab.experiment', "
            "'poisonlab.training'))]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_top_level_api_resolves_every_name():
    for name in poisonlab.__all__:
        assert getattr(poisonlab, name) is not None
    assert issubclass(poisonlab.PoisonlabError, ValueError)
    assert poisonlab.make_attack is poisonlab.attacks.make_attack
    with pytest.raises(AttributeError):
        poisonlab.no_such_name  # noqa: B018


def test_package_faces_export_their_classes():
    from poisonlab.attacks import FGSM, BadNets, Blend, GradientMatching, LabelFlip, SleeperAgent
    from poisonlab.defenses import DETECTORS, PCADetector

    faces = (FGSM, GradientMatching, LabelFlip, BadNets, Blend, SleeperAgent)
    assert {face.name for face in faces} == set(poisonlab.ATTACKS)
    assert DETECTORS["pca"] is PCADetector and len(DETECTORS) == 11
