"""Every CLI command against a table of bad inputs: names, numbers, files, configs, outputs, environment.

For each row: exit code 2, exactly one stderr line starting ``poisonlab: error:``, no traceback, and
nothing created or changed under the working folder (inputs and outputs) or the cache. Signals and
broken pipes, which need a real process, are tested at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from poisonlab.attacks import make_attack
from poisonlab.cli import main
from poisonlab.data import load_dataset

# {w}: the working folder with the inputs below; outputs go to {w}/out* (which must never appear)
ROWS = [
    # names
    ("attack", ["attack", "nosuch", "--dataset", "digits", "--out", "{w}/out.npz"], "invalid choice"),
    ("attack", ["attack", "label-flip", "--dataset", "nosuch", "--out", "{w}/out.npz"], "unknown dataset 'nosuch'"),
    ("detect", ["detect", "--poisoned", "{w}/poisoned.npz", "--defense", "nosuch", "--out", "{w}/out.json"],
     "unknown defense 'nosuch'"),
    ("detect", ["detect", "--poisoned", "{w}/poisoned.npz", "--defense", "pca", "--param", "n_comp=3",
                "--out", "{w}/out.json"], "unknown parameter 'n_comp'"),
    ("detect", ["detect", "--poisoned", "{w}/poisoned.npz", "--defense", "pca", "--features", "sift",
                "--out", "{w}/out.json"], "invalid choice: 'sift'"),
    ("detect", ["detect", "--poisoned", "{w}/poisoned.npz"], "detect needs --out"),
    ("data", ["data", "info", "nosuch"], "unknown dataset 'nosuch'"),
    ("data", ["data", "prepare", "nosuch"], "unknown dataset 'nosuch'"),
    ("data", ["data", "prepare", "mnist", "--source", "ftp"], "invalid choice"),
    ("reproduce", ["reproduce", "--out", "{w}/out", "--dataset", "nosuch", "--quiet"], "unknown dataset 'nosuch'"),
    ("reproduce", ["reproduce", "--out", "{w}/out", "--defenses", "pca,nope"], "unknown defense 'nope'"),
    ("train", ["train", "--dataset", "digits", "--precision", "fp8", "--out", "{w}/out"], "invalid choice: 'fp8'"),
    ("train", ["train", "--out", "{w}/out"], "one of the arguments --dataset --poisoned is required"),
    ("train", ["train", "--dataset", "digits", "--schedule", "airbench", "--out", "{w}/out"],
     "schedule 'airbench' is a schedule for SGD"),
    ("train", ["train", "--dataset", "digits", "--schedule", "cosine", "--out", "{w}/out"], "invalid choice"),
    ("train", ["train", "--dataset", "digits", "--tta", "shift", "--out", "{w}/out"], "invalid choice"),
    # numbers
    ("attack", ["attack", "label-flip", "--dataset", "{w}/data.npz", "--rate", "0", "--out", "{w}/out.npz"],
     "expected a number in (0, 1]"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/data.npz", "--rate", "1e-9", "--out", "{w}/out.npz"],
     "poisons none"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/data.npz", "--rate", "abc", "--out", "{w}/out.npz"],
     "expected a number in (0, 1]"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/data.npz", "--seed", "-1", "--out", "{w}/out.npz"],
     "expected an integer in 0..4294967295"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/data.npz", "--seed", "18446744073709551616", "--out",
                "{w}/out.npz"], "expected an integer in 0..4294967295"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/data.npz", "--source-class", "99", "--out", "{w}/out.npz"],
     "source_class must be a class index in 0..9"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/data.npz", "--target-class", "3", "--out", "{w}/out.npz"],
     "target_class needs source_class"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/data.npz", "--source-class", "2", "--target-class", "2",
                "--out", "{w}/out.npz"], "a flip must change the label"),
    ("attack", ["attack", "fgsm", "--dataset", "{w}/data.npz", "--eps", "-1", "--out", "{w}/out.npz"],
     "expected a positive number"),
    ("attack", ["attack", "fgsm", "--dataset", "{w}/data.npz", "--eps", "nan", "--out", "{w}/out.npz"],
     "expected a positive number"),
    ("attack", ["attack", "gradient-matching", "--dataset", "{w}/data.npz", "--eps", "300", "--out", "{w}/out.npz"],
     "eps (in [0, 1] pixel units"),
    ("attack", ["attack", "gradient-matching", "--dataset", "{w}/data.npz", "--max-shift", "-1", "--out",
                "{w}/out.npz"], "max_shift must be"),
    ("attack", ["attack", "gradient-matching", "--dataset", "{w}/data.npz", "--budget", "0.0001", "--out",
                "{w}/out.npz"], "gives no poison"),
    ("attack", ["attack", "gradient-matching", "--dataset", "{w}/data.npz", "--device", "tpu", "--out",
                "{w}/out.npz"], "invalid choice: 'tpu'"),
    ("train", ["train", "--dataset", "digits", "--epochs", "0", "--out", "{w}/out"], "expected a positive integer"),
    ("train", ["train", "--dataset", "digits", "--lr", "-1", "--out", "{w}/out"], "expected a positive number"),
    ("train", ["train", "--dataset", "digits", "--batch-size", "0", "--out", "{w}/out"], "expected a positive"),
    ("train", ["train", "--dataset", "digits", "--subset", "0", "10", "--out", "{w}/out"], "expected a positive"),
    ("train", ["train", "--poisoned", "{w}/poisoned.npz", "--subset", "10", "10", "--out", "{w}/out"],
     "--subset applies to --dataset only"),
    ("detect", ["detect", "--poisoned", "{w}/poisoned.npz", "--defense", "pca", "--contamination", "0.7",
                "--out", "{w}/out.json"], "expected 'auto' or a number in [0, 0.5]"),
    ("detect", ["detect", "--poisoned", "{w}/poisoned.npz", "--defense", "pca", "--param", "n_components=abc",
                "--out", "{w}/out.json"], "n_components must be a positive integer"),
    ("detect", ["detect", "--poisoned", "{w}/poisoned.npz", "--defense", "pca", "--param", "contamination=lots",
                "--out", "{w}/out.json"], "contamination"),
    ("detect", ["detect", "--poisoned", "{w}/poisoned.npz", "--defense", "pca", "--param", "=3",
                "--out", "{w}/out.json"], "--param takes KEY=VALUE"),
    ("reproduce", ["reproduce", "--out", "{w}/out", "--workers", "-1"], "'workers' must be a non-negative integer"),
    ("reproduce", ["reproduce", "--out", "{w}/out", "--seeds", "0"], "expected a positive integer"),
    ("validate", ["validate", "--poisoned", "{w}/poisoned.npz", "--runs", "0", "--out", "{w}/out.json"],
     "expected a positive integer"),
    ("attack", ["attack", "badnets", "--dataset", "{w}/data.npz", "--rate", "1.5", "--out", "{w}/out.npz"],
     "expected a number in (0, 1]"),
    ("attack", ["attack", "badnets", "--dataset", "{w}/data.npz", "--target-class", "10", "--out", "{w}/out.npz"],
     "target_class must be a class index in 0..9"),
    ("attack", ["attack", "badnets", "--dataset", "{w}/data.npz", "--source-class", "3", "--target-class", "3",
                "--out", "{w}/out.npz"], "a backdoor moves one class to another"),
    ("attack", ["attack", "badnets", "--dataset", "{w}/data.npz", "--trigger-size", "16", "--out", "{w}/out.npz"],
     "does not fit 16x16 images"),
    ("attack", ["attack", "blend", "--dataset", "{w}/data.npz", "--alpha", "0", "--out", "{w}/out.npz"],
     "expected a number in (0, 1]"),
    ("attack", ["attack", "badnets", "--dataset", "{w}/data.npz", "--source-class", "3", "--rate", "0.5",
                "--out", "{w}/out.npz"], "has only"),
    # files
    ("attack", ["attack", "label-flip", "--dataset", "{w}/missing.npz", "--out", "{w}/out.npz"], "no such file"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/text.npz", "--out", "{w}/out.npz"], "not an .npz file"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/pickled.npz", "--out", "{w}/out.npz"], "pickled objects"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/nokeys.npz", "--out", "{w}/out.npz"], "missing key(s)"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/label255.npz", "--out", "{w}/out.npz"],
     "has no sample of"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/test42.npz", "--out", "{w}/out.npz"],
     "y_test has label 42"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/nonsquare.npz", "--out", "{w}/out.npz"], "must be square"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/empty.npz", "--out", "{w}/out.npz"], "split is empty"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/bright.npz", "--out", "{w}/out.npz"], "within [0, 1]"),
    ("train", ["train", "--poisoned", "{w}/truncated.npz", "--out", "{w}/out"], "not"),
    ("detect", ["detect", "--poisoned", "{w}/data.npz", "--defense", "pca", "--out", "{w}/out.json"],
     "not a poisoned dataset"),
    ("validate", ["validate", "--poisoned", "{w}/missing.npz", "--out", "{w}/out.json"], "no such file"),
    ("attack", ["attack", "badnets", "--dataset", "{w}/data.npz", "--trigger", "hello-kitty", "--out", "{w}/out.npz"],
     "trigger 'hello-kitty' is neither a named pattern"),
    ("attack", ["attack", "blend", "--dataset", "{w}/data.npz", "--trigger", "{w}/text.npz", "--out", "{w}/out.npz"],
     "not a readable image"),
    ("attack", ["attack", "badnets", "--dataset", "{w}/data.npz", "--trigger", "{w}/pictures/test/dog/1.png",
                "--out", "{w}/out.npz"], "not a readable image"),
    ("attack", ["attack", "fgsm", "--dataset", "{w}/data.npz", "--surrogate", "{w}/missing.safetensors",
                "--out", "{w}/out.npz"], "no such file"),
    ("attack", ["attack", "fgsm", "--dataset", "{w}/data.npz", "--surrogate", "{w}/garbage.safetensors",
                "--out", "{w}/out.npz"], "cannot load weights"),
    ("detect", ["detect", "--poisoned", "{w}/poisoned.npz", "--defense", "pca", "--features-from",
                "{w}/fewrows.npz", "--out", "{w}/out.json"], "'features' must be a numeric"),
    ("detect", ["detect", "--poisoned", "{w}/poisoned.npz", "--defense", "pca", "--features-from",
                "{w}/data.npz", "--out", "{w}/out.json"], "no 'features' array"),
    ("data", ["data", "info", "{w}/text.npz"], "not an .npz file"),
    ("data", ["data", "info", "cifar10", "--data-dir", "{w}/text.npz"], "checksum mismatch"),
    ("data", ["data", "info", "cifar10", "--data-dir", "{w}/foreign"], "not the official archive's folder"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/pictures", "--out", "{w}/out.npz"],
     "not a readable image"),
    ("train", ["train", "--dataset", "{w}/lonely", "--out", "{w}/out"], "needs at least 2 class folders"),
    # configs
    ("run", ["run", "{w}/missing.toml", "--out", "{w}/out"], "no such config file"),
    ("run", ["run", "{w}/broken.toml", "--out", "{w}/out"], "not valid TOML"),
    ("run", ["run", "{w}/unknown_key.toml", "--out", "{w}/out"], "unknown key 'epochz'"),
    ("run", ["run", "{w}/eps.toml", "--out", "{w}/out"], "'attacks[1].params' (fgsm): eps must be a positive number"),
    ("run", ["run", "{w}/lots.toml", "--out", "{w}/out"], "'defense_params.pca': n_components must be"),
    ("run", ["run", "{w}/nodata.toml", "--out", "{w}/out"], "no such file"),
    ("run", ["run", "{w}/fourclass.toml", "--out", "{w}/out"], "does not fit"),
    ("run", ["run", "{w}/twice.toml", "--out", "{w}/out"], "'seeds' must be distinct"),
    ("run", ["run", "{w}/noattacks.toml", "--out", "{w}/out"], "'attacks' must list at least one attack"),
    ("run", ["run", "{w}/binary.toml", "--out", "{w}/out"], "cannot read"),
    ("reproduce", ["reproduce", "--dataset", "{w}/four.npz", "--out", "{w}/out", "--quiet"], "the paper's preset"),
    # outputs
    ("attack", ["attack", "label-flip", "--dataset", "{w}/data.npz", "--out", "/proc/poisonlab-out.npz"],
     "cannot write under /proc"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/data.npz", "--out", "{w}"], "is a folder"),
    ("attack", ["attack", "label-flip", "--dataset", "{w}/data.npz", "--out", "{w}/text.npz/out.npz"],
     "is not a folder"),
    ("detect", ["detect", "--poisoned", "{w}/poisoned.npz", "--defense", "pca", "--out", "{w}"], "is a folder"),
    ("train", ["train", "--dataset", "digits", "--out", "{w}/data.npz"], "exists and is not a folder"),
    ("train", ["train", "--dataset", "digits", "--out", "/proc/poisonlab-out"], "cannot write under /proc"),
    ("reproduce", ["reproduce", "--out", "{w}/data.npz"], "exists and is not a folder"),
    ("reproduce", ["reproduce", "--out", "{w}/foreign", "--dataset", "digits"], "not a poisonlab run"),
    ("validate", ["validate", "--poisoned", "{w}/poisoned.npz", "--out", "/proc/v.json"], "cannot write under /proc"),
    ("report", ["report", "{w}/missing"], "no such run folder"),
    ("report", ["report", "{w}/malformed"], "malformed results"),
    ("report", ["report", "{w}/otherformat"], "format 'other/1'"),
    # sweeps (the full table of bad sweep files is in tests/cli/test_sweep.py)
    ("sweep", ["sweep", "{w}/nosuch.toml", "--out", "{w}/out"], "no such sweep file"),
    ("sweep", ["sweep", "{w}/nosuch.toml", "--out", "{w}/out", "--engine", "spark"], "invalid choice: 'spark'"),
    ("report", ["report", "{w}/foreign"], "no results.json here"),
    # environment
    ("data", ["data", "prepare", "mnist", "--force", "--env", "POISONLAB_CACHE={w}/text.npz"], "is not a folder"),
    ("data", ["data", "prepare", "mnist", "--force", "--env", "POISONLAB_CACHE=/proc/poisonlab-cache"],
     "cannot write under /proc"),
]
if not torch.cuda.is_available():  # a device this machine lacks, asked for where an attack crafts
    ROWS += [("attack", ["attack", name, "--dataset", "{w}/data.npz", "--device", "cuda", "--out", "{w}/out.npz",
                         *extra], "no CUDA GPU is available")
             for name, extra in (("gradient-matching", []), ("sleeper-agent", ["--target-class", "1"]))]


def _npz(path: Path, **arrays) -> None:
    np.savez(path, **arrays)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("work")
    ds = load_dataset("digits").subset(200, 60, seed=0)
    arrays = {"x_train": ds.x_train[:, 0], "y_train": ds.y_train, "x_test": ds.x_test[:, 0], "y_test": ds.y_test}
    _npz(w / "data.npz", **arrays)
    make_attack("label-flip", rate=0.1).poison(ds, seed=0).save(w / "poisoned.npz")
    (w / "text.npz").write_text("x_train,y_train\n1,2\n")
    _npz(w / "pickled.npz", x_train=np.array([{"a": 1}], dtype=object), y_train=np.zeros(1), x_test=np.zeros(1),
         y_test=np.zeros(1))
    _npz(w / "nokeys.npz", x_train=arrays["x_train"])
    label255 = dict(arrays, y_train=arrays["y_train"].copy())
    label255["y_train"][0] = 255
    _npz(w / "label255.npz", **label255)
    test42 = dict(arrays, y_test=arrays["y_test"].copy())
    test42["y_test"][0] = 42
    _npz(w / "test42.npz", **test42)
    _npz(w / "nonsquare.npz", **dict(arrays, x_train=arrays["x_train"][:, :, :12], x_test=arrays["x_test"][:, :, :12]))
    _npz(w / "empty.npz", **dict(arrays, x_train=arrays["x_train"][:0], y_train=arrays["y_train"][:0]))
    _npz(w / "bright.npz", **dict(arrays, x_train=arrays["x_train"] / 100.0, x_test=arrays["x_test"] / 100.0))
    four = ds.y_train < 4
    _npz(w / "four.npz", x_train=arrays["x_train"][four], y_train=arrays["y_train"][four],
         x_test=arrays["x_test"][ds.y_test < 4], y_test=arrays["y_test"][ds.y_test < 4])
    (w / "truncated.npz").write_bytes((w / "poisoned.npz").read_bytes()[:500])
    (w / "garbage.safetensors").write_bytes(b"\x00" * 64)
    _npz(w / "fewrows.npz", features=np.zeros((3, 4), dtype=np.float32))
    (w / "broken.toml").write_text("dataset = \n")
    (w / "binary.toml").write_bytes(b"\xff\xfe\x00")
    (w / "unknown_key.toml").write_text("epochz = 3\n")
    (w / "eps.toml").write_text('dataset = "digits"\n[[attacks]]\nname = "label-flip"\n[[attacks]]\nname = "fgsm"\n'
                                'params = { eps = -1 }\n')
    (w / "lots.toml").write_text('dataset = "digits"\ndefenses = ["pca"]\n[defense_params.pca]\nn_components = "lots"\n')
    (w / "nodata.toml").write_text('dataset = "nosuch.npz"\n')
    (w / "fourclass.toml").write_text('dataset = "four.npz"\n[[attacks]]\nname = "label-flip"\n'
                                      'params = { rate = 0.5, source_class = 2, target_class = 8 }\n')
    (w / "twice.toml").write_text("seeds = [1, 1]\n")
    (w / "noattacks.toml").write_text("attacks = []\n")
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            (w / "pictures" / split / name).mkdir(parents=True)
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(w / "pictures" / split / name / "0.png")
        (w / "lonely" / split / "cat").mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(w / "lonely" / split / "cat" / "0.png")
    (w / "pictures" / "test" / "dog" / "1.png").write_bytes(b"not a png")
    (w / "foreign").mkdir()
    (w / "foreign" / "notes.txt").write_text("mine")
    for name, results in (("malformed", '{"format": "poisonlab-results/1", "attacks": []}'),
                          ("otherformat", '{"format": "other/1"}')):
        (w / name).mkdir()
        (w / name / "results.json").write_text(results)
    return w


def tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``roots`` with its size and modification time."""
    out = {}
    for root in roots:
        if root.exists():
            for p in [root, *root.rglob("*")]:
                st = p.stat()
                out[str(p)] = (st.st_size if p.is_file() else -1, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("command, argv, message", ROWS, ids=[f"{i:02d}-{r[0]}" for i, r in enumerate(ROWS)])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(work, tmp_path, monkeypatch, capsys, command, argv, message):
    cache = tmp_path / "cache"
    monkeypatch.setenv("POISONLAB_CACHE", str(cache))
    monkeypatch.chdir(work)
    argv = [a.format(w=work) for a in argv]
    if "--env" in argv:
        i = argv.index("--env")
        key, _, value = argv[i + 1].partition("=")
        monkeypatch.setenv(key, value)
        argv = argv[:i] + argv[i + 2:]
    before = tree(work, cache)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert len(lines) == 1 and lines[0].startswith("poisonlab: error: "), lines
    assert message in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert tree(work, cache) == before, "a failed command created or changed files"


def test_the_table_covers_every_command_and_is_large():
    assert {r[0] for r in ROWS} == {"attack", "detect", "data", "reproduce", "run", "train", "validate", "report",
                                    "sweep"}
    assert len(ROWS) >= 60


# ---------------------------------------------------------------------------------------------- processes

TINY = """dataset = "digits"
n_train = 600
n_test = 150
clean_epochs = 3
attacked_epochs = 3
retrain_epochs = 3
batch_size = 32
workers = 2
defenses = ["pca", "kmeans"]
projection_samples = 0
[[attacks]]
name = "label-flip"
params = { rate = 0.2 }
"""


def _start_run(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "run"
    env = {**os.environ, "POISONLAB_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "poisonlab.cli", "run", str(config), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    return proc, out


def _wait_for_stage(proc: subprocess.Popen, out: Path, timeout: float = 120) -> None:
    """Until the run has stored its first stage (wall time only bounds the wait; nothing is timed)."""
    deadline = time.monotonic() + timeout
    while not list(out.glob("stages/*/stage.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run stored no stage"
        time.sleep(0.2)


@pytest.mark.parametrize("how", ["sigterm", "ctrl-c twice"])
def test_a_stopped_run_exits_cleanly_and_says_how_to_resume(tmp_path, how):
    proc, out = _start_run(tmp_path)
    _wait_for_stage(proc, out)
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:  # Ctrl-C reaches the whole process group, workers included, and an impatient user presses it again
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == (143 if how == "sigterm" else 130), err
    assert "Traceback" not in err and "leaked semaphore" not in err, err
    assert "--resume" in err
    assert not (out / "results.json").exists() and list(out.glob("stages/*/stage.json"))


def test_a_closed_pipe_is_not_an_error(tmp_path):
    env = {**os.environ, "POISONLAB_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(f"{sys.executable} -m poisonlab.cli data info digits | head -1", shell=True,
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("digits") and "Traceback" not in proc.stderr, proc.stderr


def test_results_with_wrong_value_types_are_one_line(work, tmp_path, capsys):
    """A results.json that passes the layout check but holds values of the wrong type deeper down."""
    run = tmp_path / "run"
    run.mkdir()
    scenario = {"accuracy": 0.9, "per_class_accuracy": [0.9] * 10, "confusion_matrix": [[1] * 10] * 10,
                "seconds": "slow", "n_train": "many", "std": 3, "per_seed": "x"}
    results = {"format": "poisonlab-results/1", "config": {}, "seeds": [0], "primary_attack": "a",
               "dataset": {"name": "d", "n_train": 10, "n_test": 10, "classes": [str(i) for i in range(10)]},
               "attacks": {"a": {"attack": {"name": 3}, "scenarios": {"clean": scenario, "attacked": scenario}}}}
    (run / "results.json").write_text(json.dumps(results))
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("poisonlab: error: ") and "malformed results" in err[0]
    assert sorted(p.name for p in run.iterdir()) == ["results.json"]
