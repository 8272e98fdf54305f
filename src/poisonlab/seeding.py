"""Seeds: their valid range, and a separate random stream for each consumer that needs one.

Attacks, detectors and trainings take the run's seed as they always have (their numbers are part of the
record); anything else that draws random numbers from a seed (the report's projection sample, ...)
draws from its own named stream, so it never repeats another consumer's draws: ``default_rng(seed)``
twice makes the smaller of two ``choice`` draws a subset of the larger.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from poisonlab.errors import PoisonlabError

# torch, NumPy and scikit-learn all take seeds in this range
MAX_SEED = 2**32 - 1


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` as an int in ``0 .. MAX_SEED``, or a :class:`PoisonlabError` naming ``what``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise PoisonlabError(f"{what} must be an integer in 0..{MAX_SEED}, got {seed!r}")
    return int(seed)


def stream(seed: int, name: str) -> np.random.Generator:
    """A generator for consumer ``name`` under ``seed``: independent of ``default_rng(seed)`` and of every
    other name's stream, and the same for the same (seed, name)."""
    return np.random.default_rng([check_seed(seed), zlib.crc32(name.encode())])


@contextmanager
def deterministic_kernels(device: str | torch.device) -> Iterator[None]:
    """On a CUDA ``device``: cuDNN's deterministic algorithms and no autotuning while the block runs (the
    previous settings come back after it), so a seed gives the same weights and poisons run after run on one
    GPU. Why: cuDNN's fastest convolution backward passes sum in a varying order. Elsewhere: nothing."""
    if torch.device(device).type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    saved = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = saved


__all__ = ["MAX_SEED", "check_seed", "deterministic_kernels", "stream"]
