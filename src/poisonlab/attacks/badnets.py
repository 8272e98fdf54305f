"""BadNets (Gu, Dolan-Gavitt and Garg 2017, "BadNets: Identifying Vulnerabilities in the Machine Learning
Model Supply Chain"): a small patch stamped into a share of the training images, relabelled to the
target class (dirty label). A model trained on them classifies any image carrying the patch as the target.

The patch replaces its pixels (no blending); by default a 3x3 black-and-white checkerboard one pixel in
from the top-left corner on MNIST-sized images, scaled with the image side
(:func:`~poisonlab.attacks.triggers.patch_side`). Which samples are poisoned and how they are recorded:
:mod:`poisonlab.attacks.backdoor`.

Where the patch goes matters to the victim's architecture: on 28x28 images the paper CNN's last pooling
(a 5x5 map pooled by 2) drops the bottom row and right column, so it sees a bottom-right patch only
through the edges of its receptive fields and hardly learns it. Hence the default ``position="top-left"``,
in full view of every model here (Gu et al. put theirs bottom-right: ``position="bottom-right"``;
docs/measurements.md, "Backdoors").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from poisonlab.attacks.backdoor import Backdoor
from poisonlab.attacks.base import check_int
from poisonlab.attacks.triggers import POSITIONS, Trigger, make_trigger
from poisonlab.errors import PoisonlabError


@dataclass(frozen=True)
class BadNets(Backdoor):
    """Stamp a patch trigger into ``round(rate * N)`` training images of the attacked classes and relabel
    them ``target_class``.

    Parameters
    ----------
    rate, target_class, source_class, trigger, pattern_seed
        As in :class:`~poisonlab.attacks.backdoor.Backdoor` (``trigger`` default ``checkerboard``).
    position : {"bottom-right", "bottom-left", "top-right", "top-left", "center"}
        Where the patch goes.
    size : int or None
        Patch side in pixels; ``None``: ``max(3, round(side * 3 / 28))`` of the image side.
    margin : int
        Pixels between the patch and the image edges (default 1).

    Notes
    -----
    ``is_poison`` marks exactly the poisoned samples: their labels change to the target and only the
    patch's pixels change. The record's ``backdoor`` entry holds the patch and its place.
    """

    position: str = "top-left"
    size: int | None = None
    margin: int = 1

    name: ClassVar[str] = "badnets"

    def check_trigger_params(self) -> None:
        if self.position not in POSITIONS:
            raise PoisonlabError(f"position must be one of {', '.join(POSITIONS)}, got {self.position!r}")
        if self.size is not None:
            check_int(self.size, "size")
        check_int(self.margin, "margin", minimum=0)

    def trigger_for(self, image_shape: tuple[int, ...]) -> Trigger:
        return make_trigger(self.trigger, image_shape, size=self.size, position=self.position,
                            margin=int(self.margin), seed=int(self.pattern_seed))


__all__ = ["BadNets"]
