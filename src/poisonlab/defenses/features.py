"""Feature spaces a detector can work in: raw pixels, PCA of the pixels, or a model's activations.

Features and detectors are independent: any detector runs on any feature space. Every feature space is
computed on the (possibly poisoned) training set only; nothing from the test split is used.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from poisonlab.errors import PoisonlabError
from poisonlab.training import TrainConfig, describe_model, extract_features, train

FEATURE_KINDS: tuple[str, ...] = ("pixels", "pca", "activations")


def compute_features(kind: str, x_train_u8: np.ndarray, y_train: np.ndarray, *, num_classes: int | None = None,
                     model: Any = None, seed: int = 0, train_config: Any = None, n_components: int = 50,
                     progress: bool = False, precision: str = "fp32") -> tuple[np.ndarray, dict[str, Any]]:
    """Features (N, D) float32 of the training images, and a JSON-able record of how they were made.

    Parameters
    ----------
    kind : str
        ``"pixels"``: the flattened pixels scaled to [0, 1] (D = C * H * W).
        ``"pca"``: the first ``n_components`` principal components of the pixels, fitted on these
        training images (randomized SVD seeded with ``seed``).
        ``"activations"``: the penultimate-layer activations (D = 128 for the paper CNN) of ``model``
        (any ``torch.nn.Module``: see :func:`poisonlab.inference.extract_features` for which layer),
        or, when ``model`` is ``None``, of a model trained here on ``(x_train_u8, y_train)`` with
        ``train_config`` (default: ``TrainConfig(seed=seed)``, 3 epochs).
    x_train_u8 : np.ndarray (N, C, H, W) uint8
    y_train : np.ndarray (N,) int
        The (possibly poisoned) labels; used only to train the model for ``"activations"``.
    num_classes : int, optional
        Classes for that model (default ``y_train.max() + 1``).
    model : torch.nn.Module, optional
        An already-trained model (saves a training run).
    seed : int
        Seeds the PCA and the default training config.
    train_config : poisonlab.training.TrainConfig, optional
    n_components : int
        Components for ``"pca"``.
    progress : bool
        Show training progress bars.
    precision : str
        ``"fp32"`` or ``"bf16"``: the arithmetic of the forward pass for ``"activations"``.

    Returns
    -------
    X : np.ndarray (N, D) float32
    info : dict
        ``features``, ``dim``, ``seconds`` (wall time including any training) and kind-specific facts:
        ``explained_variance`` for PCA; ``model``, ``model_seed``, ``trained_here``, ``train_seconds``
        and ``train_config`` for activations (``model_seed`` is ``None`` for a caller's model unless it
        carries a ``seed`` attribute: the caller knows how it was trained).
    """
    x_train_u8 = np.asarray(x_train_u8)
    y_train = np.asarray(y_train)
    if x_train_u8.ndim != 4 or x_train_u8.dtype != np.uint8:
        raise PoisonlabError(f"images must be uint8 (N, C, H, W), got {x_train_u8.dtype} {x_train_u8.shape}")
    if len(y_train) != len(x_train_u8):
        raise PoisonlabError(f"{len(x_train_u8)} images but {len(y_train)} labels")
    if len(x_train_u8) == 0:
        raise PoisonlabError("no training images to compute features of")
    start = time.perf_counter()
    if kind == "pixels":
        X, info = pixel_features(x_train_u8), {}
    elif kind == "pca":
        X, info = pca_features(x_train_u8, n_components=n_components, seed=seed)
    elif kind == "activations":
        X, info = activation_features(x_train_u8, y_train, num_classes=num_classes, model=model, seed=seed,
                                      train_config=train_config, progress=progress, precision=precision)
    else:
        raise PoisonlabError(f"unknown features {kind!r}; choose one of {', '.join(FEATURE_KINDS)}")
    info = {"features": kind, "dim": int(X.shape[1]), "seconds": round(time.perf_counter() - start, 4), **info}
    return np.ascontiguousarray(X, dtype=np.float32), info


def pixel_features(x_u8: np.ndarray) -> np.ndarray:
    """Flattened pixels in [0, 1]: (N, C, H, W) uint8 -> (N, C * H * W) float32."""
    return x_u8.reshape(len(x_u8), -1).astype(np.float32) / np.float32(255.0)


def pca_features(x_u8: np.ndarray, *, n_components: int = 50, seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """The first ``n_components`` principal components of the pixels (N, n_components) float32."""
    pixels = pixel_features(x_u8)
    n_components = int(min(n_components, pixels.shape[0], pixels.shape[1]))
    if n_components < 1:
        raise PoisonlabError(f"n_components must be >= 1, got {n_components}")
    pca = PCA(n_components=n_components, svd_solver="randomized", random_state=seed)
    X = pca.fit_transform(pixels)
    return X, {"n_components": n_components,
               "explained_variance": round(float(pca.explained_variance_ratio_.sum()), 4)}


def activation_features(x_u8: np.ndarray, y: np.ndarray, *, num_classes: int | None = None, model: Any = None,
                        seed: int = 0, train_config: Any = None, progress: bool = False,
                        precision: str = "fp32") -> tuple[np.ndarray, dict[str, Any]]:
    """Penultimate activations (N, D) of ``model``, training one on ``(x_u8, y)`` when it is ``None``."""
    info: dict[str, Any] = {}
    if model is None:
        config = train_config if train_config is not None else TrainConfig(seed=seed)
        classes = int(num_classes if num_classes is not None else int(np.max(y)) + 1)
        result = train(x_u8, y, num_classes=classes, config=config, progress=progress, desc="features")
        model = result.model
        info.update(trained_here=True, model_seed=config.seed, train_seconds=round(result.seconds, 3),
                    train_config=config.to_dict())
    else:
        # the caller's model: its seed is whatever the caller recorded, if anything
        info.update(trained_here=False, model_seed=getattr(model, "seed", None))
    X = extract_features(model, x_u8, precision=precision)
    info["model"] = describe_model(model)
    info["precision"] = precision
    return X, info
