"""Detection time of every registered detector on 60,000 x 128 float32 features, against the reference
libraries doing the same job, measured in one process.

The features are a synthetic mixture shaped like the paper CNN's penultimate activations on MNIST: 10
classes of 6,000, each a mixture of 3 Gaussian components in 128 dimensions (component centres
N(0, 2^2), unit noise, ReLU), with a uniform 10% label flip. Each method runs ``--repeats`` times in
turn (so background load hits all alike); the table gives the median seconds, F1 against the flip
mask, and the ratio to the reference that does the same job:

- ``activation-clustering``: ART ``ActivationDefence``'s clustering step (PCA 10, 2-means per class,
  ``cluster_analysis="smaller"``, on the same activations);
- ``spectral``: ART ``SpectralSignatureDefense`` (expected rate 0.1);
- ``confident-learning``: cleanlab ``find_label_issues`` on 5-fold kNN (k=10) out-of-fold probabilities;
- ``deep-knn``, ``knn`` and the rest: a 10-d kNN label vote (PCA 10, k=50, scikit-learn).

    python benchmarks/detector_speed.py [--n 60000] [--dim 128] [--repeats 3] [--defenses NAME ...]
                                        [--features benchmarks/.cache/SCENARIO-KEY.npz]

``--features`` times the same methods on real activations cached by ``benchmarks/detection.py`` instead.
Each row also gives the process CPU seconds (all threads), which a busy machine inflates less than wall time.

References need ``pip install adversarial-robustness-toolbox cleanlab`` (benchmark only).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

from pathlib import Path

import numpy as np

from poisonlab.data import read_npz
from poisonlab.defenses import DETECTORS, detection_metrics, make_detector
from references import (art_activation_clustering, art_spectral_signatures, available, cleanlab_knn,
                        knn_vote)

REFERENCE_OF = {"activation-clustering": "ART activation clustering", "spectral": "ART spectral signatures",
                "confident-learning": "cleanlab + kNN out-of-fold"}
DEFAULT_REFERENCE = "10-d kNN vote"


def synthetic_activations(n: int = 60000, dim: int = 128, n_classes: int = 10, components: int = 3,
                          flip: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features (n, dim) float32, flipped labels (n,) int64 and the flip mask (n,) bool (see the module doc)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(n_classes * components, dim))
    y_true = np.repeat(np.arange(n_classes), n // n_classes)
    component = y_true * components + rng.integers(0, components, len(y_true))
    X = np.maximum(centres[component] + rng.normal(size=(len(y_true), dim)), 0.0).astype(np.float32)
    is_flipped = np.zeros(len(y_true), dtype=bool)
    is_flipped[rng.choice(len(y_true), int(flip * len(y_true)), replace=False)] = True
    y = y_true.copy()
    y[is_flipped] = (y[is_flipped] + rng.integers(1, n_classes, is_flipped.sum())) % n_classes
    return X, y.astype(np.int64), is_flipped


def references(flip: float) -> dict:
    found = available()
    out = {DEFAULT_REFERENCE: lambda X, y: knn_vote(X, y)}
    if found["art"]:
        out["ART activation clustering"] = lambda X, y: art_activation_clustering(X, y)
        out["ART spectral signatures"] = lambda X, y: art_spectral_signatures(X, y, expected_rate=flip)
    if found["cleanlab"]:
        out["cleanlab + kNN out-of-fold"] = lambda X, y: cleanlab_knn(X, y)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--defenses", nargs="+", default=sorted(DETECTORS), choices=sorted(DETECTORS), metavar="NAME")
    ap.add_argument("--no-references", action="store_true")
    ap.add_argument("--features", type=Path, help="a features .npz from benchmarks/detection.py's cache")
    args = ap.parse_args()

    if args.features:
        arrays = read_npz(args.features)
        X, y, is_flipped = arrays["features"], arrays["labels"], arrays["is_poison"].astype(bool)
        what = f"{args.features.name}: {X.shape[0]} x {X.shape[1]}, {is_flipped.mean():.1%} poisons"
    else:
        X, y, is_flipped = synthetic_activations(args.n, args.dim, seed=args.seed)
        what = f"synthetic {args.n} x {args.dim} float32, 10% uniform flip, seed {args.seed}"
    rate = float(is_flipped.mean())
    print(f"# {what}; {args.repeats} repeats, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} "
          f"at start")
    methods = {name: (lambda name: lambda X, y: _poisonlab(name, X, y))(name) for name in args.defenses}
    refs = {} if args.no_references else references(rate)
    methods.update(refs)
    times: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    f1: dict[str, float | None] = {}
    for _ in range(args.repeats):
        for name, method in methods.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start, start_cpu = time.perf_counter(), time.process_time()
                flagged, scores = method(X, y)
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
            f1[name] = detection_metrics(is_flipped, flagged, scores)["f1"]
            print(f"  {name}: {times[name][-1]:.3f} s", file=sys.stderr, flush=True)
    seconds = {name: statistics.median(t) for name, t in times.items()}
    cpu_seconds = {name: statistics.median(t) for name, t in cpu.items()}
    print(f"{'method':<30}{'seconds':>9}{'cpu s':>8}{'F1':>8}  {'reference':<28}{'ratio':>7}")
    for name in methods:
        ref = REFERENCE_OF.get(name, DEFAULT_REFERENCE) if name in args.defenses else None
        ratio = f"{seconds[name] / seconds[ref]:.2f}" if ref in seconds else "-"
        f1_text = "-" if f1[name] is None else f"{f1[name]:.3f}"
        print(f"{name:<30}{seconds[name]:>9.3f}{cpu_seconds[name]:>8.2f}{f1_text:>8}  {ref or '':<28}{ratio:>7}")
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")
    sys.stdout.flush()


def _poisonlab(name: str, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    detector = make_detector(name).fit(X, y)
    return detector.flagged_, detector.scores_


if __name__ == "__main__":
    main()
