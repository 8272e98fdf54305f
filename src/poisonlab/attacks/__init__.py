"""Poisoning attacks. Each returns a :class:`~poisonlab.data.PoisonedDataset` carrying its ground truth."""

from __future__ import annotations

from typing import Any

from poisonlab.attacks.backdoor import Backdoor, BackdoorRecord, backdoor_metrics
from poisonlab.attacks.badnets import BadNets
from poisonlab.attacks.base import Attack, PoisonPlan
from poisonlab.attacks.blend import Blend
from poisonlab.attacks.fgsm import FGSM, fgsm_images
from poisonlab.attacks.gradient_matching import GradientMatching, brew_poisons, gradient_alignment
from poisonlab.attacks.label_flip import LABEL_FLIP_PAPER_PRESET, LabelFlip
from poisonlab.attacks.sleeper_agent import SleeperAgent
from poisonlab.attacks.targeted import TargetedRecord
from poisonlab.registry import Registry

ATTACKS: Registry[Attack] = Registry("attack", {cls.name: cls for cls in (LabelFlip, FGSM, GradientMatching,
                                                                        BadNets, Blend, SleeperAgent)})


def make_attack(name: str, **params: Any) -> Attack:
    """An attack by registered name with checked parameters, e.g. ``make_attack("label-flip", rate=0.1)``."""
    return ATTACKS.make(name, **params).check_params()


__all__ = ["ATTACKS", "Attack", "Backdoor", "BackdoorRecord", "BadNets", "Blend", "FGSM", "GradientMatching",
           "LABEL_FLIP_PAPER_PRESET", "LabelFlip", "PoisonPlan", "SleeperAgent", "TargetedRecord", "backdoor_metrics",
           "brew_poisons", "fgsm_images", "gradient_alignment", "make_attack"]
