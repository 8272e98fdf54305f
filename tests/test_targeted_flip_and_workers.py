"""A heavy targeted flip (the label-flip preset's shape), label shares, step budgets, the model's
pool-first order, bf16 inference, and training jobs in worker processes."""

from __future__ import annotations

import subprocess
import sys

import warnings

import numpy as np
import pytest
import torch

from poisonlab.defenses import detection_metrics, make_detector
from poisonlab.defenses.cluster import cluster_disagreement
from poisonlab.defenses.deep_knn import share_disagreement
from poisonlab.errors import PoisonlabError
from poisonlab.experiment import config_from_dict
from poisonlab.models import build_model
from poisonlab.parallel import TrainJob, TrainPool, auto_workers, threads_per_worker
from poisonlab.training import TrainConfig, evaluate, predict_logits, train


def heavy_targeted_flip(*, per_class: int = 200, rate: float = 0.48, seed: int = 0):
    """Four well-separated blobs; ``rate`` of class 0 relabelled 1 (like 48% of the 2s relabelled 8)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, (4, 8))
    y_true = np.repeat(np.arange(4), per_class)
    X = (centres[y_true] + rng.normal(0, 1, (len(y_true), 8))).astype(np.float32)
    y = y_true.copy()
    flipped = rng.choice(np.flatnonzero(y_true == 0), int(rate * per_class), replace=False)
    y[flipped] = 1
    is_poison = np.zeros(len(y), dtype=bool)
    is_poison[flipped] = True
    return X, y, is_poison


def test_label_shares_see_through_a_near_half_targeted_flip():
    # one cluster per true class: the cluster of 0s holds 104 labels 0 and 96 labels 1
    X, y, is_poison = heavy_targeted_flip()
    assigned = np.repeat(np.arange(4), 200)
    disagreement = cluster_disagreement(assigned, y)
    # counts would call the 96 a close minority (1 - 96/104 = 0.08); shares make them clear outliers
    assert (disagreement[is_poison] > 0.5).all()
    assert (disagreement[~is_poison] == 0).all()


@pytest.mark.parametrize("name", ["pca", "kmeans", "pca+kmeans", "birch", "dbscan"])
def test_paper_defenses_find_a_heavy_targeted_flip(name):
    X, y, is_poison = heavy_targeted_flip()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = make_detector(name).fit(X, y)
    metrics = detection_metrics(is_poison, det.flagged_)
    assert metrics["f1"] > 0.8, metrics


def test_share_vote_of_deep_knn():
    X, y, is_poison = heavy_targeted_flip()
    share = make_detector("deep-knn", vote="share", n_neighbors=20).fit(X, y)
    plurality = make_detector("deep-knn", vote="plurality", n_neighbors=20).fit(X, y)
    f1_share = detection_metrics(is_poison, share.flagged_)["f1"]
    assert f1_share > 0.8 and f1_share > detection_metrics(is_poison, plurality.flagged_)["f1"] + 0.2
    votes = np.array([[3, 1], [2, 2], [0, 4], [1, 3]])
    # label 1 is three times as common as label 0: two votes of each favour label 0 (sample 1)
    np.testing.assert_allclose(share_disagreement(votes, np.array([0, 1, 1, 1])), [0.0, 2 / 3, 0.0, 0.0])


def test_paper_cnn_pools_before_relu_without_changing_the_function():
    torch.manual_seed(0)
    model = build_model("paper-cnn", image_size=28, num_classes=10).eval()
    x = torch.rand(8, 1, 28, 28)

    def relu_then_pool(m, x):
        x = (x.expand(-1, 3, -1, -1) - m.mean) / m.std
        x = m.pool1(torch.relu(m.conv1(x)))
        x = m.pool2(torch.relu(m.conv2(x)))
        x = m.pool3(torch.relu(m.conv3(x)))
        return m.fc2(torch.relu(m.fc1(torch.flatten(x, 1))))

    with torch.no_grad():
        torch.testing.assert_close(model(x), relu_then_pool(model, x))


@pytest.fixture(scope="module")
def digits():
    from poisonlab.data import load_dataset

    return load_dataset("digits").subset(400, 150, seed=0)


def test_step_budget_trains_exactly_that_many_steps(digits):
    calls = []
    config = TrainConfig(epochs=1, batch_size=64, seed=0, steps=17)  # 400 images: 7 per pass
    result = train(digits.x_train, digits.y_train, num_classes=10, config=config, progress=False,
                   on_epoch=lambda e, n, loss, s: calls.append((e, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)] and len(result.epoch_losses) == 3
    with pytest.raises(PoisonlabError, match="steps"):
        TrainConfig(steps=0)


def test_bf16_inference_agrees_with_fp32(digits):
    model = train(digits.x_train, digits.y_train, num_classes=10, config=TrainConfig(epochs=3, seed=0),
                  progress=False).model
    fp32 = predict_logits(model, digits.x_test).argmax(1)
    bf16 = predict_logits(model, digits.x_test, precision="bf16").argmax(1)
    assert (fp32 == bf16).mean() > 0.95
    assert evaluate(model, digits.x_test, digits.y_test, num_classes=10, precision="bf16")["n_test"] == 150
    with pytest.raises(PoisonlabError):
        predict_logits(model, digits.x_test, precision="fp16")


def test_pool_in_process_and_in_workers_agree(digits):
    config = TrainConfig(epochs=1, batch_size=64, seed=3)
    job = TrainJob(digits.x_train, digits.y_train, digits.x_test, digits.y_test, 10, config, "t", features=True)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with TrainPool(0) as pool:
            record, state, features = pool.submit(job).result()
    finally:
        torch.set_num_threads(torch_threads)
    with TrainPool(1, 1) as pool:
        record_w, state_w, features_w = pool.submit(job).result()
    assert record["accuracy"] == record_w["accuracy"] and record["steps"] == 7
    for key in state:
        np.testing.assert_array_equal(state[key], state_w[key])
    assert features.shape == (400, 128) and np.array_equal(features, features_w)


def test_worker_counts():
    assert auto_workers(1) == 0 and auto_workers(2) == 2 and auto_workers(16) == 4
    assert threads_per_worker(2, 2) == 1 and threads_per_worker(4, 16) == 4 and threads_per_worker(0, 8) == 0


@pytest.mark.parametrize("changes, key", [({"workers": -1}, "workers"), ({"workers": "two"}, "workers"),
                                          ({"retrain_budget": "minutes"}, "retrain_budget")])
def test_bad_runner_settings_name_the_key(changes, key):
    with pytest.raises(PoisonlabError, match=key):
        config_from_dict(changes)


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
