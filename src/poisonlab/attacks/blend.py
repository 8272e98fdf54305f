"""Blended injection (Chen, Liu, Li, Lu and Song 2017, "Targeted Backdoor Attacks on Deep Learning Systems
Using Data Poisoning"): a whole-image pattern mixed into a share of the training images,
``x' = (1 - alpha) * x + alpha * pattern``, relabelled to the target class (dirty label).

Unlike a BadNets patch the trigger touches every pixel but only faintly, so a poison is hard to tell from
a clean image by eye. ``alpha`` defaults to 0.2, the usual blend ratio for this attack since Chen et al.
(BackdoorBench's ``blended`` setting); the default pattern is uniform ``noise``, Chen et al.'s
random-pattern key, drawn from ``pattern_seed``. The same ``alpha`` makes the triggered test images. Which samples are
poisoned and how they are recorded: :mod:`poisonlab.attacks.backdoor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from poisonlab.attacks.backdoor import Backdoor
from poisonlab.attacks.base import check_number
from poisonlab.attacks.triggers import Trigger, make_trigger

DEFAULT_ALPHA = 0.2


@dataclass(frozen=True)
class Blend(Backdoor):
    """Blend a whole-image pattern into ``round(rate * N)`` training images of the attacked classes and
    relabel them ``target_class``.

    Parameters
    ----------
    rate, target_class, source_class, pattern_seed
        As in :class:`~poisonlab.attacks.backdoor.Backdoor`.
    trigger : str
        A pattern name or an image file, drawn or resized to the whole image (default ``noise``).
    alpha : float
        Blend weight in (0, 1] of the pattern (default 0.2).

    Notes
    -----
    A poisoned pixel is ``round((1 - alpha) * x + alpha * p)``: it moves towards the pattern by at most
    ``alpha * |p - x| + 0.5`` grey levels. ``is_poison`` marks exactly the poisoned samples.
    """

    trigger: str = "noise"
    alpha: float = DEFAULT_ALPHA

    name: ClassVar[str] = "blend"

    def check_trigger_params(self) -> None:
        check_number(self.alpha, "alpha", high=1.0)

    def trigger_for(self, image_shape: tuple[int, ...]) -> Trigger:
        return make_trigger(self.trigger, image_shape, alpha=float(self.alpha), full_image=True,
                            seed=int(self.pattern_seed))


__all__ = ["DEFAULT_ALPHA", "Blend"]
