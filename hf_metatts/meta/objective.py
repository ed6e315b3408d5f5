"""The meta-objective on query batches: the model's loss plus weighted terms that only the outer loop sees.

``QueryObjective(model, {name: (weight, measure)})`` is a ``loss_fn(params, batches) -> scalar`` like
``maml.make_loss_fn``: per batch ``model(**batch).loss + sum_k weight_k * measure_k(output, batch)``, averaged over
the batches weighted by their number of utterances. After each call ``last[name]`` holds the unweighted mean of
each measure over the utterances (a float, for the training log). The terms are the identity term
(``meta.identity``) and the content term (``meta.content``); the inner loop, and so ``model.adapt``, never sees them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

Measure = Callable[[object, dict], torch.Tensor]


class QueryObjective:
    """The model's loss on query batches plus weighted ``measures``; ``last`` has each measure's last mean."""

    def __init__(self, model: nn.Module, measures: Mapping[str, tuple[float, Measure]]):
        from .maml import make_loss_fn

        self.measures = {name: (float(weight), measure) for name, (weight, measure) in measures.items()}
        self.last = {name: float("nan") for name in self.measures}
        self._records: dict[str, list[tuple[float, int]]] = {name: [] for name in self.measures}
        self._loss_fn = make_loss_fn(model, term=self._term)

    def _term(self, out, batch) -> torch.Tensor:
        utterances = int(batch["labels"].shape[0])
        total = None
        for name, (weight, measure) in self.measures.items():
            value = measure(out, batch)
            self._records[name].append((float(value.detach()), utterances))
            total = weight * value if total is None else total + weight * value
        return total

    def __call__(self, params, batches) -> torch.Tensor:
        self._records = {name: [] for name in self.measures}
        loss = self._loss_fn(params, batches)
        for name, records in self._records.items():
            self.last[name] = sum(v * n for v, n in records) / sum(n for _, n in records)
        return loss


__all__ = ["Measure", "QueryObjective"]
