"""Training jobs in worker processes: the same numbers in or out of process, worker counts, the allocator."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from poisonlab.parallel import TrainJob, TrainPool, auto_workers, threads_per_worker
from poisonlab.training import TrainConfig


@pytest.fixture(scope="module")
def digits():
    from poisonlab.data import load_dataset

    return load_dataset("digits").subset(400, 150, seed=0)


def test_pool_in_process_and_in_workers_agree(digits):
    config = TrainConfig(epochs=1, batch_size=64, seed=3)
    job = TrainJob(digits.x_train, digits.y_train, digits.x_test, digits.y_test, 10, config, "t", activations=True)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with TrainPool(0) as pool:
            here = pool.submit(job).result()
    finally:
        torch.set_num_threads(torch_threads)
    with TrainPool(1, 1) as pool:
        worker = pool.submit(job).result()
    assert here.record["accuracy"] == worker.record["accuracy"] and here.record["steps"] == 7
    assert np.array_equal(here.test_predictions, worker.test_predictions)
    assert here.test_predictions.shape == (150,) and "test_predictions" not in here.record
    for key in here.state:
        np.testing.assert_array_equal(here.state[key], worker.state[key])
    assert here.activations.shape == (400, 128) and np.array_equal(here.activations, worker.activations)


def test_worker_counts():
    assert auto_workers(1) == 0 and auto_workers(2) == 2 and auto_workers(16) == 4
    assert threads_per_worker(2, 2) == 1 and threads_per_worker(4, 16) == 4 and threads_per_worker(0, 8) == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator settings exist on Linux only")
def test_kept_freed_memory_stops_the_page_fault_storm():
    """Big short-lived arrays (a training step's activations, scikit-learn's distance chunks) fault in
    fresh pages on every allocation by default; after keep_freed_memory() the heap reuses them."""
    script = (
        "import resource, sys, numpy as np\n"
        "from poisonlab.parallel import keep_freed_memory\n"
        "if sys.argv[1] == 'keep' and not keep_freed_memory(): print('unsupported'); sys.exit()\n"
        "np.ones(5_000_000)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
        "for _ in range(30): np.ones(5_000_000)  # 40 MB each, freed at once\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)\n")
    default, kept = (subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True,
                                    check=True).stdout.strip() for mode in ("default", "keep"))
    if kept == "unsupported":
        pytest.skip("not glibc")
    assert int(kept) * 10 < int(default)  # with transparent huge pages a fault can be 2 MB, hence no absolute count
