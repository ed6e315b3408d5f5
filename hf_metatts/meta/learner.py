"""``MetaLearner``: the module the Trainer wraps. Its ``forward`` runs a whole episode.

Running the inner loop *and* the query loss inside ``forward`` is what lets DDP see one forward per step
and synchronise every gradient (the initialisation, the backbone, Meta-SGD rates, Meta-LSTM weights).
"""

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from .global_variance import global_variance_term
from .head import MetaLearnerConfig, MetaLearnerHead
from .maml import (
    InnerLoopResult,
    inner_loop,
    make_loss_fn,
    multi_step_loss_weights,
    second_order_context,
    with_fixed_alignment,
)
from .reptile import reptile_loss

logger = logging.getLogger(__name__)

Batch = Mapping[str, torch.Tensor]


@dataclass
class MetaOutput(ModelOutput):
    """Output of :meth:`MetaLearner.forward` (a ``ModelOutput``, so DDP finds the loss in it).

    Attributes:
        loss: scalar, mean query loss after adaptation (or the baseline's training loss).
    """

    loss: torch.Tensor | None = None


def batch_size(batch: Batch) -> int:
    return int(next(iter(batch.values())).shape[0])


class MetaLearner(nn.Module):
    """A TTS model plus the meta-learner head, with the episode as ``forward``.

    Args:
        model: the TTS model (``model(**batch).loss``; ``encode_voice`` when ``zero_shot_start``).
        config: :class:`MetaLearnerConfig` with the resolved adapted names.
        head: the learned meta-learner tensors (built from the config when None).
        identity_encoder / identity_loss_weight: with a weight > 0, the query loss of the meta-objective adds
            ``weight * (1 - cos)`` between the encoder's embeddings of the predicted and the target query mels
            (:class:`~hf_metatts.meta.identity.IdentityObjective`); the inner loop keeps the model's loss.
        content_loss_weight: with a weight > 0, the query loss of the meta-objective adds ``weight`` times the
            model's own aligner's negative log posterior of each predicted query frame's token
            (:func:`~hf_metatts.meta.content.output_token_nll`, a fixed critic); the inner loop keeps its loss.
            ``content_loss_at_start=False`` leaves it out of the query loss at the start voice.
    """

    def __init__(self, model: nn.Module, config: MetaLearnerConfig, head: MetaLearnerHead | None = None,
                 identity_encoder: nn.Module | None = None, identity_loss_weight: float = 0.0,
                 content_loss_weight: float = 0.0, content_loss_at_start: bool = True):
        super().__init__()
        self.model = model
        self.meta_config = config
        shapes = {n: p.shape for n, p in model.named_parameters()}
        self.head = head if head is not None else MetaLearnerHead(config, shapes)
        self.progress = 0.0  # fraction of meta-training done, for MAML++ annealing (set by the trainer)
        self.last_stats: dict[str, float] = {}
        self.log_before = True  # also measure the query loss before adaptation (one forward per task)
        # Frozen speaker encoder of the meta-objective's identity term (``meta.identity``); the inner loop never
        # sees it. Registered as a submodule so that it follows the learner's device; not saved with checkpoints.
        self.identity_encoder = identity_encoder if identity_loss_weight > 0 else None
        self.identity_loss_weight = float(identity_loss_weight)
        self.content_loss_weight = float(content_loss_weight)
        self.content_loss_at_start = bool(content_loss_at_start)
        self._terms_after: dict[str, float] = {}  # the meta-objective's terms of the last task, for logging

    def train(self, mode: bool = True):
        """``nn.Module.train``, except that the identity encoder stays in eval mode: it is a fixed critic, and its
        batch norms must apply their running statistics, never update them."""
        super().train(mode)
        if self.identity_encoder is not None:
            self.identity_encoder.eval()
        return self

    # ----------------------------------------------------------------------------------------------
    def initial_params(self, support: Sequence[Batch] | None = None) -> dict[str, torch.Tensor]:
        """The adapted set's starting point: the model's own parameters, or the support encoder's voice."""
        own = dict(self.model.named_parameters())
        params = {n: own[n] for n in self.meta_config.adapted_parameter_names}
        if self.meta_config.zero_shot_start and support is not None:
            params.update(encode_support(self.model, support, params))
        return params

    def rule(self):
        """The update rule of the inner loop: SGD or Adam directions with ``inner_lr`` (maml) or learned
        per-parameter rates (metasgd), or the Meta-LSTM."""
        return self.head.rule()

    def run_task(
        self, support: Sequence[Batch], query: Sequence[Batch], steps: int, first_order: bool, msl: bool
    ) -> tuple[InnerLoopResult, torch.Tensor | None, torch.Tensor | None]:
        """Adapt on one task's support set; return the loop result, the (differentiable) query loss after the
        steps (None when the loop diverged) and the query loss at the start voice (None unless
        ``zero_shot_loss_weight`` is set). With ``outer_update="reptile"`` the second is Reptile's
        :func:`~hf_metatts.meta.reptile.reptile_loss` between the start and the adapted parameters instead."""
        loss_fn = make_loss_fn(self.model)
        objective = self._query_objective(loss_fn)
        inner_loss_fn = self._inner_loss_fn(loss_fn)
        support = with_fixed_alignment(self.model, support)
        params = self.initial_params(support)
        start_loss = None
        if self.meta_config.weighs_start:
            start_loss = self._query_objective(loss_fn, content=self.content_loss_at_start)(params, query)
        weights = None
        if msl:
            weights = multi_step_loss_weights(steps, self.progress, self.meta_config.multi_step_loss_min_weight)
        result = inner_loop(inner_loss_fn, params, support, steps, self.rule(), first_order, query=query,
                            query_weights=weights, query_loss_fn=loss_fn)
        if not result.finite:
            return result, None, start_loss
        if self.meta_config.outer_update == "reptile":
            return result, reptile_loss(params, result.params), start_loss
        if not msl:
            query_loss = objective(result.params, query)
        elif objective is loss_fn:
            query_loss = result.query_loss
        else:  # MAML++ weighs the model's loss after every step; the objective's terms score the final voice
            query_loss = result.query_loss + objective(result.params, query) - loss_fn(result.params, query)
        self._terms_after = dict(getattr(objective, "last", {}))
        return result, query_loss, start_loss

    def _inner_loss_fn(self, loss_fn):
        """The inner loop's support loss: the model's, plus the global-variance term when one is set."""
        weight = self.meta_config.global_variance_weight
        if not weight:
            return loss_fn
        return make_loss_fn(self.model, term=global_variance_term(weight))

    def _query_objective(self, loss_fn, content: bool = True):
        """The meta-objective on query batches: the model's loss, plus the identity and (unless ``content`` is
        False) content terms when set."""
        measures = {}
        if self.identity_encoder is not None:
            from .identity import identity_measure

            measures["identity"] = (self.identity_loss_weight, identity_measure(self.identity_encoder))
        if content and self.content_loss_weight > 0:
            from .content import output_token_nll

            measures["content"] = (self.content_loss_weight,
                                   lambda out, batch: output_token_nll(self.model, out, batch))
        if not measures:
            return loss_fn
        from .objective import QueryObjective

        return QueryObjective(self.model, measures)

    def forward(self, support, query, task_index=None) -> MetaOutput:
        """One episode.

        Args:
            support, query: per task, a list of collated batches (see :mod:`hf_metatts.meta.episodes`).
            task_index: (B,) task positions (speaker ids for the ``pretrain`` baseline).

        Returns:
            :class:`MetaOutput` with the mean query loss after adaptation over the tasks whose inner loop
            stayed finite; ``stats`` has ``query_loss_before``, ``query_loss_after``, ``skipped_tasks``.
        """
        if self.meta_config.method == "pretrain":
            return self._pretrain(support, query, task_index)
        with second_order_context(not self.meta_config.first_order):
            return self._episode(support, query)

    def _episode(self, support, query) -> MetaOutput:
        cfg = self.meta_config
        losses, before, after, distances, terms, skipped = [], [], [], [], {}, 0
        for task_support, task_query in zip(support, query):
            self._terms_after = {}
            if self.log_before and not cfg.weighs_start:
                with torch.no_grad():
                    objective = self._query_objective(make_loss_fn(self.model))
                    before.append(float(objective(self.initial_params(task_support), task_query)))
            result, q, start = self.run_task(task_support, task_query, cfg.inner_steps, cfg.first_order,
                                             cfg.multi_step_loss)
            if start is not None:
                before.append(float(start.detach()))
            if q is None or not torch.isfinite(q.detach()).all() or (start is not None and not torch.isfinite(start)):
                skipped += 1
                continue
            losses.append(q if start is None else q + cfg.zero_shot_loss_weight * start)
            if cfg.outer_update == "reptile":
                distances.append(float(q.detach()))
                with torch.no_grad():
                    after.append(float(make_loss_fn(self.model)(result.params, task_query)))
            else:
                after.append(result.query_losses[-1] if cfg.multi_step_loss else float(q.detach()))
            for name, value in self._terms_after.items():
                terms.setdefault(name, []).append(value)
        if losses:
            loss = torch.stack(losses).mean()
        else:
            logger.warning("Every task of this episode diverged (NaN/inf); the step applies no update.")
            loss = sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)
        self.last_stats = {"skipped_tasks": float(skipped), "tasks": float(len(support))}
        if after:
            self.last_stats["query_loss_after"] = sum(after) / len(after)
        if before:
            self.last_stats["query_loss_before"] = sum(before) / len(before)
        for name, values in terms.items():
            self.last_stats[f"{name}_loss_after"] = sum(values) / len(values)
        if distances:  # Reptile: half the squared distance the steps moved the start, the loss it minimises
            self.last_stats["reptile_distance"] = sum(distances) / len(distances)
        return MetaOutput(loss=loss)

    def _pretrain(self, support, query, task_index) -> MetaOutput:
        """Baseline: ordinary multi-speaker training on all rows of the episode, task -> speaker id."""
        total, count = 0.0, 0
        num_speakers = getattr(getattr(self.model, "config", None), "num_speakers", 0) or 0
        for b, batches in enumerate(list(support) + list(query)):
            task = b % len(support)
            for batch in batches:
                kwargs = dict(batch)
                if num_speakers > 0 and task_index is not None:
                    kwargs["speaker_ids"] = task_index[task].expand(batch_size(batch)) % num_speakers
                out = self.model(**kwargs)
                n = batch_size(batch)
                total = total + out.loss * n
                count += n
        loss = total / count
        self.last_stats = {"skipped_tasks": 0.0, "tasks": float(len(support)), "train_loss": float(loss.detach())}
        return MetaOutput(loss=loss)

    # ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def adaptation_curve(self, episodes: Sequence[dict], steps: int) -> list[float]:
        """Mean query loss after 0..steps inner steps over single-task episodes (no meta-gradient).

        The ``pretrain`` baseline is measured with plain fine-tuning (Adam, ``finetune_lr``) of the same set.
        """
        from .adapt import (
            adapt_parameters,  # local: adapt imports this module's helpers
        )

        sums = [0.0] * (steps + 1)
        counts = [0] * (steps + 1)
        loss_fn = make_loss_fn(self.model)
        method = "finetune" if self.meta_config.method == "pretrain" else self.meta_config.method
        for episode in episodes:
            for support, query in zip(episode["support"], episode["query"]):
                curve = []

                def record(step, loss, params, _query=query, _curve=curve):
                    with torch.no_grad():
                        _curve.append(float(loss_fn(params, _query)))

                init = None
                if self.meta_config.zero_shot_start:
                    init = {n: t.detach() for n, t in self.initial_params(support).items()}
                record(0, 0.0, init if init is not None else self.initial_params())
                adapt_parameters(self.model, support, method=method, steps=steps, meta_learner=self.head,
                                 init=init, callback=record, adapted_names=self.meta_config.adapted_parameter_names)
                for i, value in enumerate(curve):
                    if math.isfinite(value):
                        sums[i] += value
                        counts[i] += 1
        return [s / c if c else float("nan") for s, c in zip(sums, counts)]


def encode_support(model: nn.Module, support: Sequence[Batch], params: Mapping[str, torch.Tensor]) -> dict:
    """Zero-shot start: the support encoder's voice, averaged over batches (weighted by utterances).

    ``model.encode_voice(labels (b,T,80), labels_attention_mask (b,T)) -> {name: tensor}``; only names of the
    adapted set are kept, the others stay at the model's own values.
    """
    total, count = {}, 0
    for batch in support:
        voice = model.encode_voice(batch["labels"], batch["labels_attention_mask"])
        n = batch_size(batch)
        for name, value in voice.items():
            if name in params:
                total[name] = total.get(name, 0) + value.reshape(params[name].shape) * n
        count += n
    return {name: value / count for name, value in total.items()}
