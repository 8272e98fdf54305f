"""``poisonlab sweep`` from the command line: outputs, progress, resume, Ctrl-C, and bad input (one line,
exit 2, nothing written)."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from poisonlab.cli import main
from poisonlab.cli.sweep import SweepProgress
from poisonlab.sweep_results import csv_columns, load_sweep, numbers_of, read_csv

TINY = """\
[base]
dataset = "digits"
n_train = 500
n_test = 150
clean_epochs = 1
attacked_epochs = 1
retrain_epochs = 1
batch_size = 16

[grid]
seeds = [0]
defense = ["pca", "knn"]

[[grid.attack]]
name = "label-flip"
params = { rate = 0.3 }
"""


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweeps") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def tiny_run(tiny_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "sweep"
    code = main(["sweep", str(tiny_file), "--out", str(out), "--workers", "0"])
    assert code == 0
    return out


def test_sweep_writes_table_json_and_report(tiny_run):
    out = tiny_run
    sweep = load_sweep(out)
    assert sweep["trainings"] == {"naive": 6, "planned": 4, "needed": sweep["trainings"]["needed"], "ran": sweep[
        "trainings"]["needed"], "reused": 0} and sweep["trainings"]["needed"] <= 4
    table = read_csv(out / "sweep.csv")
    assert [r["defense"] for r in table] == ["pca", "knn"] and list(table[0]) == csv_columns(sweep["columns"])
    for name in ("report.md", "report.html", "sweep-spec.json"):
        assert (out / name).is_file(), name
    assert len(list((out / "plots").glob("*.png"))) == 1  # one rate: no curves, the run-time chart


def test_progress_is_a_line_per_cell_and_a_summary(tiny_file, tmp_path, capsys):
    assert main(["sweep", str(tiny_file), "--out", str(tmp_path / "s"), "--workers", "0", "--no-report"]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("poisonlab: cell ")]
    assert len(lines) == 2 and all(re.search(r"\[\d/2 cells, trainings \d/4, ", line) for line in lines), lines
    assert "4 trainings planned against 6 without sharing" in captured.err
    assert "detection F1" in captured.out and "trainings against 6 without sharing" in captured.out
    assert not (tmp_path / "s" / "report.md").exists()


def test_resume_reuses_every_stage(tiny_file, tiny_run, tmp_path, capsys):
    reference = read_csv(tiny_run / "sweep.csv")
    assert main(["sweep", str(tiny_file), "--out", str(tiny_run), "--resume", "--quiet"]) == 0
    assert numbers_of(read_csv(tiny_run / "sweep.csv")) == numbers_of(reference)
    assert load_sweep(tiny_run)["trainings"]["ran"] == 0
    assert main(["report", str(tiny_run)]) == 0  # the report command knows a sweep folder
    assert "report.md" in capsys.readouterr().err


def test_a_terminal_gets_one_bar():
    stream = io.StringIO()
    state = {"cells_done": 1, "cells_total": 4, "failed": 0, "trainings_done": 3, "trainings_planned": 7,
             "elapsed": 12.0, "eta": 30.0}
    with SweepProgress(stream=stream, terminal=True) as shown:
        shown.update(state)
        shown.log("cell 0 seed 0: done")
        shown.update({**state, "cells_done": 4, "trainings_done": 7, "eta": None, "failed": 1})
    text = stream.getvalue()
    assert "4/4 cells" in text and "trainings 7/7, 1 failed" in text and "ETA 30s" in text and "\r" in text
    assert "poisonlab: cell 0 seed 0: done" in text


def test_ctrl_c_stops_cleanly_and_resume_finishes_with_the_same_numbers(tiny_file, tiny_run, tmp_path):
    out = tmp_path / "sweep"
    env = {**os.environ, "POISONLAB_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "poisonlab.cli", "sweep", str(tiny_file), "--out", str(out),
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + 120  # bounds the wait only; nothing is timed
    while not list(out.glob("stages/*/stage.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sweep stored no stage"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group, workers included
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err, err
    assert not (out / "sweep.csv").exists()
    assert main(["sweep", str(tiny_file), "--out", str(out), "--resume", "--quiet", "--no-report"]) == 0
    assert numbers_of(read_csv(out / "sweep.csv")) == numbers_of(read_csv(tiny_run / "sweep.csv"))


# ------------------------------------------------------------------------------------------- bad input

FILES = {
    "notoml.toml": "[base\n",
    "bogus.toml": TINY + "\n[bogus]\nx = 1\n",
    "empty.toml": "[base]\ndataset = \"digits\"\n[grid]\n",
    "types.toml": TINY.replace('defense = ["pca", "knn"]', 'defense = "pca"'),
    "nodefense.toml": TINY.replace('defense = ["pca", "knn"]', "defense = []"),
    "misfit.toml": TINY.replace("params = { rate = 0.3 }", "params = { rate = 0.3, source_class = 12 }"),
}
RAY_OR_MISSING = r"cannot reach a Ray cluster at 127\.0\.0\.1:1|the ray engine needs Ray"
BAD = [
    (["{w}/nosuch.toml"], "no such sweep file"),
    (["{w}/notoml.toml"], "not valid TOML"),
    (["{w}/bogus.toml"], "unknown key 'bogus' (known keys: base, grid, include)"),
    (["{w}/empty.toml"], "the grid has no attack"),
    (["{w}/types.toml"], "'grid.defense' must be a list of values, got 'pca'"),
    (["{w}/nodefense.toml"], "'grid.defense' is an empty list"),
    (["{w}/misfit.toml"], "does not fit digits"),
    (["{w}/tiny.toml", "--engine", "spark"], "invalid choice: 'spark'"),
    (["{w}/tiny.toml", "--engine", "ray", "--address", "127.0.0.1:1"], RAY_OR_MISSING),
    (["{w}/tiny.toml", "--address", "auto"], "--address joins a Ray cluster: it needs --engine ray"),
    (["{w}/tiny.toml", "--engine", "ray", "--workers", "2"], "--workers sets the local engine's processes"),
    (["{w}/tiny.toml", "--threads", "0"], "expected a positive integer"),
    (["{w}/tiny.toml", "--out", "{w}/tiny.toml"], "exists and is not a folder"),
    (["{w}/tiny.toml", "--out", "{w}/foreign"], "holds files that are not a poisonlab sweep"),
]


@pytest.fixture
def work(tmp_path):
    for name, text in {**FILES, "tiny.toml": TINY}.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    return tmp_path


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns) for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("argv, message", BAD, ids=[f"{i:02d}" for i in range(len(BAD))])
def test_bad_input_is_one_line_exit_2_and_nothing_written(work, capsys, argv, message):
    argv = [a.format(w=work) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(work / "out")]
    before = _tree(work)
    try:
        code = main(["sweep", *argv, "--quiet"])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("poisonlab: error: "), lines
    assert re.search(message, lines[0]) if message is RAY_OR_MISSING else message in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert _tree(work) == before, "a failed sweep created or changed files"
