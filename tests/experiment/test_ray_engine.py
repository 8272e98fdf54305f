"""The ray engine on a local 2-CPU Ray: the quick sweep gives the local engine's numbers, and a Ray worker
killed mid-training is replaced, its task retried, and the sweep finishes with the same numbers.

Ray starts once for the module. Where Ray is not installed the module is skipped, unless
``POISONLAB_REQUIRE_RAY`` is set (CI installs ``poisonlab[ray]`` and sets it, so there it must run).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from poisonlab.cli import main
from poisonlab.errors import PoisonlabError
from poisonlab.experiment.engines import make_engine
from poisonlab.experiment.grid import load_sweep_spec
from poisonlab.experiment.sweep import run_sweep
from poisonlab.sweep_results import numbers_of, read_csv

if os.environ.get("POISONLAB_REQUIRE_RAY"):
    import ray
else:
    ray = pytest.importorskip("ray")

from poisonlab.experiment.ray_engine import TASK_NAME  # noqa: E402 - only once Ray is known to be there

QUICK = Path(__file__).resolve().parents[2] / "examples" / "sweep-quick.toml"


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """The quick sweep on the local engine (2 worker processes of 1 thread)."""
    out = tmp_path_factory.mktemp("local")
    assert main(["sweep", str(QUICK), "--out", str(out), "--quiet", "--no-report"]) == 0
    return read_csv(out / "sweep.csv")


def test_quick_sweep_gives_identical_numbers_on_ray_and_local(local_ray, local_reference, tmp_path, capsys):
    out = tmp_path / "ray"
    assert main(["sweep", str(QUICK), "--out", str(out), "--engine", "ray", "--no-report"]) == 0
    table = read_csv(out / "sweep.csv")
    assert len(table) == 8 and all(r["status"] == "ok" for r in table)
    assert numbers_of(table) == numbers_of(local_reference)
    err = capsys.readouterr().err
    assert err.count("poisonlab: cell ") == 8 and "on the ray engine" in err


def _busy_training_workers() -> list[int]:
    """PIDs of Ray workers running a poisonlab training now (Ray titles a busy worker ``ray::<task>``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if title.startswith(f"ray::{TASK_NAME}"):
                pids.append(int(entry.name))
    return pids


def test_a_killed_worker_is_retried_and_the_numbers_do_not_change(local_ray, local_reference, tmp_path):
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set() and not killed:
            for pid in _busy_training_workers():
                os.kill(pid, signal.SIGKILL)  # a worker dies mid-task, as on a lost node or an OOM kill
                killed.append(pid)
                break
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        with make_engine("ray") as engine:
            result = run_sweep(load_sweep_spec(QUICK), tmp_path / "ray", engine=engine)
    finally:
        stop.set()
        thread.join()
    assert killed, "no training worker was found to kill"
    assert all(r["status"] == "ok" for r in result["rows"])
    assert numbers_of(read_csv(tmp_path / "ray" / "sweep.csv")) == numbers_of(local_reference)


def test_ray_engine_options(local_ray):
    with make_engine("ray", threads=1) as engine:
        info = engine.describe()
        assert info["engine"] == "ray" and info["cluster_cpus"] == 2 and engine.slots == 2
    assert ray.is_initialized()  # a Ray this process started before is left running
    with pytest.raises(PoisonlabError, match="asks for 3"):
        make_engine("ray", threads=3)


@ray.remote(max_retries=0)
def _raises(kind: str):
    if kind == "ours":
        raise PoisonlabError("a reason in the data")
    if kind == "bug":
        raise KeyError("a bug")
    os._exit(1)  # the worker dies


@pytest.mark.parametrize("kind", ["ours", "bug", "crash"])
def test_a_task_failure_becomes_the_right_error(local_ray, kind):
    from poisonlab.experiment.ray_engine import task_error

    with pytest.raises(BaseException) as info:
        ray.get(_raises.remote(kind))
    error = task_error(info.value)
    if kind == "ours":  # the cell fails alone, with our one-line message
        assert type(error) is PoisonlabError and str(error) == "a reason in the data"
    elif kind == "bug":  # a traceback stays a traceback
        assert error is info.value and isinstance(error, ray.exceptions.RayTaskError)
    else:  # Ray lost the worker: one line that says how to go on
        assert type(error) is PoisonlabError and "Ray lost a training" in str(error) and "--resume" in str(error)
        assert "\n" not in str(error)
