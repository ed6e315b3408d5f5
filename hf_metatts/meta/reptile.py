"""Reptile (Nichol, Achiam & Schulman, 2018): the outer update moves the start toward where the steps land.

MAML's outer update follows the gradient of the query loss after the inner steps. Reptile needs no query loss:
it runs the inner steps on a task (first order) and moves the start a fraction of the way toward the adapted
parameters, ``theta <- theta + eps * mean_tasks(phi - theta)``. Written as a loss, that is one backward pass of

    0.5 * sum_n ||theta_n - stop_gradient(phi_n)||^2

whose gradient with respect to ``theta`` is ``theta - phi``: the outer optimiser of the Trainer (``optim="sgd"``
with ``learning_rate`` = ``eps`` for the paper's update) takes the step, and DDP averages it over processes like
any gradient. Only the start of the adapted set (or, with ``zero_shot_start``, the support encoder that emits it)
receives a gradient; every other weight keeps its value. A fixed point is a start from which the steps on each
task land, on average over the tasks, where they set off.
"""

from collections.abc import Mapping

import torch

#: How the outer loop updates the start (``MetaTrainingArguments.outer_update``): MAML's gradient of the query loss
#: after the steps, or Reptile's move toward the adapted parameters.
OUTER_UPDATES = ("query_loss", "reptile")


def reptile_loss(start: Mapping[str, torch.Tensor], adapted: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``0.5 * sum_n ||start_n - adapted_n||^2`` with ``adapted`` detached: its gradient with respect to each
    ``start_n`` is ``start_n - adapted_n``, Reptile's outer direction.

    Args:
        start: name -> tensor of any shape, the inner loop's starting parameters (in the graph).
        adapted: the same names and shapes, the parameters after the inner steps.

    Returns:
        a scalar tensor (float32 or the parameters' dtype).

    Raises:
        ValueError: the two sets name different parameters or their shapes differ.
    """
    if set(start) != set(adapted):
        raise ValueError(f"Reptile compares the same parameters before and after the steps; got {sorted(start)} "
                         f"and {sorted(adapted)}.")
    total = None
    for name, value in start.items():
        target = adapted[name].detach()
        if target.shape != value.shape:
            raise ValueError(f"{name}: start {tuple(value.shape)} and adapted {tuple(target.shape)} differ in shape.")
        term = 0.5 * (value - target).pow(2).sum()
        total = term if total is None else total + term
    return total


__all__ = ["OUTER_UPDATES", "reptile_loss"]
