"""Filtering defenses: detectors (scikit-learn estimators), feature spaces, detection metrics, and
:func:`run_defense`, which puts them together on one poisoned dataset."""

from __future__ import annotations

from poisonlab.defenses.activation_clustering import ActivationClustering
from poisonlab.defenses.base import Detector
from poisonlab.defenses.catalog import DETECTORS, RECOMMENDED_DETECTOR, make_detector
from poisonlab.defenses.cluster import BirchDetector, ClusterDetector, DBSCANDetector, KMeansDetector, PCAKMeansDetector
from poisonlab.defenses.confident_learning import ConfidentLearning, find_label_issues
from poisonlab.defenses.deep_knn import DeepKNN
from poisonlab.defenses.ensemble import EnsembleDetector
from poisonlab.defenses.evaluate import DefenseResult, detect_poisons, json_params, run_defense, seeded_detector
from poisonlab.defenses.features import FEATURE_KINDS, compute_features
from poisonlab.defenses.knn import KNNDetector
from poisonlab.defenses.metrics import detection_metrics
from poisonlab.defenses.pca import PCADetector
from poisonlab.defenses.spectral import SpectralSignatures

__all__ = ["DETECTORS", "FEATURE_KINDS", "RECOMMENDED_DETECTOR", "ActivationClustering", "BirchDetector", "ClusterDetector",
           "ConfidentLearning",
           "DBSCANDetector", "DeepKNN", "DefenseResult", "Detector", "EnsembleDetector", "KMeansDetector", "KNNDetector", "PCADetector",
           "PCAKMeansDetector", "SpectralSignatures", "compute_features", "detect_poisons", "detection_metrics",
           "find_label_issues", "json_params", "make_detector", "run_defense", "seeded_detector"]
