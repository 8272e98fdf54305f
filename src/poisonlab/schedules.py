"""Learning-rate schedules beyond torch's own: airbench's (Jordan 2024, arXiv:2404.00498), with its optimizer
groups and lookahead averaging.

Why a module of its own: :func:`poisonlab.training.train` picks a schedule by name, and the schedule's parts
(the rate at each step, the batch-norm bias group, the weight averaging) are tested on their own.
"""

from __future__ import annotations

import torch
from torch import nn

from poisonlab.errors import PoisonlabError

# ``TrainConfig.schedule``: Smith's one-cycle, or airbench's (warm-up and decay, fixed momentum, fast
# batch-norm biases, lookahead)
SCHEDULES: tuple[str, ...] = ("one-cycle", "airbench")
# airbench's schedule (Jordan 2024, arXiv:2404.00498): the rate rises linearly from 0.2 to 1 of its peak over
# the first 23% of the steps and falls linearly to 0.07 of it by the last
AIRBENCH_WARMUP, AIRBENCH_START, AIRBENCH_END = 0.23, 0.2, 0.07
# its Nesterov momentum, and the batch-norm biases' rate multiple (their decay per step unchanged)
AIRBENCH_MOMENTUM, AIRBENCH_BIAS_SCALE = 0.85, 64.0
# lookahead: every 5 steps the weights are pulled to an exponential average of themselves that weighs the
# past more as training ends (decay 0.95**5 * (step / total)**3)
LOOKAHEAD_EVERY, LOOKAHEAD_DECAY = 5, 0.95 ** 5


def check_optimizer(schedule: str, optimizer: str) -> None:
    """A user error when ``schedule`` does not fit ``optimizer``: airbench's schedule is SGD's (fixed
    Nesterov momentum, a bias group)."""
    if schedule == "airbench" and optimizer != "sgd":
        raise PoisonlabError(f"schedule 'airbench' is a schedule for SGD, but the optimizer is {optimizer!r}: "
                             "use sgd with it")


def airbench_sgd(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """airbench's optimizer: Nesterov SGD at momentum 0.85 over the parameters that train (``requires_grad``
    at the start), the batch-norm biases in a group of their own at ``AIRBENCH_BIAS_SCALE`` x ``lr`` with
    the decay coefficient divided by as much (the same decay per step); ``weight_decay`` is torch's coupled
    coefficient at ``lr``. The schedule then scales both groups' rates alike."""
    norm_types = (nn.BatchNorm1d, nn.BatchNorm2d)
    norms = {id(p) for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(recurse=False)}
    params = [p for p in model.parameters() if p.requires_grad]
    biases = [p for p in params if id(p) in norms]
    others = [p for p in params if id(p) not in norms]
    return torch.optim.SGD([{"params": biases, "lr": lr * AIRBENCH_BIAS_SCALE,
                             "weight_decay": weight_decay / AIRBENCH_BIAS_SCALE},
                            {"params": others, "lr": lr, "weight_decay": weight_decay}],
                           lr=lr, momentum=AIRBENCH_MOMENTUM, nesterov=True)


def airbench_rate(step: int, total_steps: int) -> float:
    """airbench's learning-rate factor (of the peak) at optimizer step ``step`` of ``total_steps`` (0-based):
    linear from 0.2 to 1 over the first 23% of the steps, then linear to 0.07 at the last."""
    warmup = int(total_steps * AIRBENCH_WARMUP)
    if step < warmup:
        frac = step / warmup
        return AIRBENCH_START * (1 - frac) + frac
    frac = (step - warmup) / max(total_steps - warmup, 1)
    return (1 - frac) + AIRBENCH_END * frac


class Lookahead:
    """airbench's lookahead (Zhang et al. 2019, in Jordan 2024's form): an exponential average of the model's
    floating-point state (weights and batch-norm statistics) that, every :data:`LOOKAHEAD_EVERY` steps, moves
    toward the model by ``1 - decay`` and is copied back into it, with ``decay = 0.95**5 * (step / total)**3``
    (no averaging early, a long memory late); after the last step the model is the average.

    Why: the averaged weights generalise better than the last iterate of a short, high-rate training.
    """

    def __init__(self, model: nn.Module, total_steps: int) -> None:
        self.total_steps = total_steps
        self.average = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}

    @torch.no_grad()
    def step(self, model: nn.Module, step: int) -> None:
        """Call after optimizer step ``step`` (1-based)."""
        if step % LOOKAHEAD_EVERY and step < self.total_steps:
            return
        state = model.state_dict()
        if step % LOOKAHEAD_EVERY == 0:
            decay = LOOKAHEAD_DECAY * (step / self.total_steps) ** 3
            for name, average in self.average.items():
                average.lerp_(state[name], 1 - decay)
        for name, average in self.average.items():
            state[name].copy_(average)


__all__ = ["AIRBENCH_BIAS_SCALE", "AIRBENCH_END", "AIRBENCH_MOMENTUM", "AIRBENCH_START", "AIRBENCH_WARMUP",
           "LOOKAHEAD_DECAY", "LOOKAHEAD_EVERY", "Lookahead", "SCHEDULES", "airbench_rate", "airbench_sgd",
           "check_optimizer"]
