"""Datasets: loading, caching, and the types the pipeline passes around."""

from poisonlab.data.dataset import Dataset, PoisonedDataset
from poisonlab.data.poisoned import load_poisoned
from poisonlab.data.npz import read_npz
from poisonlab.data.sources import DATASET_NAMES, cache_dir, load_dataset, prepare_mnist

__all__ = ["DATASET_NAMES", "Dataset", "PoisonedDataset", "cache_dir", "load_dataset", "load_poisoned", "read_npz",
           "prepare_mnist"]
