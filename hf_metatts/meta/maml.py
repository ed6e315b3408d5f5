"""MAML / Meta-SGD inner loop as a pure function: (parameters, support batches) -> adapted parameters.

The model is called through ``torch.func.functional_call`` with a dict that replaces only the adapted
parameters; the model's own parameters are never written. Gradients of the query loss with respect to
the initial parameters (the model's own leaves) flow back through the updates:

* second order: ``theta_{t+1} = theta_t - alpha * grad L_s(theta_t)`` with ``create_graph=True``;
* first order (FOMAML): the support gradient is computed on a detached copy, so
  ``d theta_T / d theta_0 = I`` and the backbone receives gradients from the query loss only.

``alpha`` is a float (MAML) or a dict of tensors shaped like the parameters (Meta-SGD, learned). The step
direction is the gradient itself (``inner_optimizer="sgd"``, :class:`SGDRule`) or Adam's normalised moment
estimate (``"adam"``, :class:`AdamRule`): each parameter then moves by about ``alpha`` per step whatever its
gradient scale.
"""

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch.func import functional_call

Params = dict[str, torch.Tensor]
Batch = Mapping[str, torch.Tensor]
LossFn = Callable[[Params, Sequence[Batch]], torch.Tensor]
# callback(step, support_loss, params): called after each inner step with the new parameters.
StepCallback = Callable[[int, float, Params], None]


@contextlib.contextmanager
def second_order_context(enabled: bool = True):
    """Kernels that support double backward: the math SDPA backend (the fused CPU/flash kernels have no
    second derivative) and cuDNN off (its RNN kernels have none either)."""
    if not enabled:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.MATH]), torch.backends.cudnn.flags(enabled=False):
        yield


def make_loss_fn(model: torch.nn.Module, extra: Mapping[str, torch.Tensor] | None = None,
                 term: Callable[[object, Batch], torch.Tensor] | None = None) -> LossFn:
    """Loss of ``model`` on a list of batches with some parameters replaced.

    Returns ``loss_fn(params, batches) -> scalar``: the mean of ``model(**batch).loss`` over batches,
    weighted by the number of utterances ``batch["input_ids"].shape[0]``. ``term(output, batch)``, when
    given, is added to each batch's loss (e.g. the identity term of ``meta.identity``).
    """

    def loss_fn(params: Params, batches: Sequence[Batch]) -> torch.Tensor:
        total, count = None, 0
        for batch in batches:
            kwargs = dict(batch)
            if extra:
                kwargs.update(extra)
            out = functional_call(model, params, args=(), kwargs=kwargs, strict=False)
            loss = out["loss"] if isinstance(out, Mapping) else out.loss
            if term is not None:
                loss = loss + term(out, batch)
            n = int(next(iter(batch.values())).shape[0])
            total = loss * n if total is None else total + loss * n
            count += n
        return total / count

    return loss_fn


def with_fixed_alignment(model: torch.nn.Module, batches: Sequence[Batch]) -> list[Batch]:
    """Support batches with the aligner's ``durations`` filled in, computed once per batch.

    The aligner reads only token embeddings and mels, never the adapted parameter set, so its durations
    cannot change during an inner loop, and its losses have no gradient with respect to the adapted set.
    Passing the durations skips the aligner and the alignment search in every step: the same adapted-set
    gradients, less work. Models without ``compute_durations`` and batches without ``labels`` pass through.
    """
    compute = getattr(model, "compute_durations", None)
    fixed = []
    for batch in batches:
        if compute is None or "labels" not in batch or batch.get("durations") is not None:
            fixed.append(batch)
            continue
        fixed.append({**batch, "durations": compute(**batch)})
    return fixed


def multi_step_loss_weights(steps: int, progress: float, min_weight: float = 0.03) -> list[float]:
    """MAML++ importance of the query loss after each inner step 1..steps.

    Uniform at ``progress=0``; the non-final weights decay linearly to ``min_weight/steps`` at
    ``progress=1`` and the final step takes the rest (weights sum to 1).
    """
    if steps == 1:
        return [1.0]
    progress = min(max(progress, 0.0), 1.0)
    low = min_weight / steps
    non_final = max(1.0 / steps * (1.0 - progress), low)
    weights = [non_final] * (steps - 1)
    return weights + [1.0 - sum(weights)]


@dataclass
class InnerLoopResult:
    """What an inner loop produced.

    Attributes:
        params: adapted parameters after the last step (in the graph of the initial ones unless detached).
        support_losses: support loss before each step (floats, length = steps run).
        query_loss: weighted query loss (MAML++), or None when no query weights were given.
        query_losses: query loss after each step (floats) when query losses were computed.
        finite: False when a support loss, a gradient or the parameters became NaN or infinite.
    """

    params: Params
    support_losses: list[float] = field(default_factory=list)
    query_loss: torch.Tensor | None = None
    query_losses: list[float] = field(default_factory=list)
    finite: bool = True


def rate_at(lr: float | Mapping[str, torch.Tensor], name: str, step: int, per_step: bool):
    """The learning rate of parameter ``name`` at inner step ``step`` (from 0): a float, a per-parameter tensor
    (Meta-SGD), or with ``per_step`` a tensor ``(S, *shape)`` of one rate per step and element, whose last row
    serves every step past ``S``."""
    if not isinstance(lr, Mapping):
        return lr
    rate = lr[name]
    return rate[min(step, rate.shape[0] - 1)] if per_step else rate


class SGDRule:
    """``theta <- theta - lr * g`` with a float or per-parameter tensor learning rate (Meta-SGD), one per step with
    ``per_step`` (see :func:`rate_at`)."""

    def __init__(self, lr: float | Mapping[str, torch.Tensor], per_step: bool = False):
        self.lr = lr
        self.per_step = per_step

    def init_state(self, params: Params):
        return None

    def step(self, state, params: Params, grads: Params, loss: torch.Tensor, step: int):
        new = {n: p - rate_at(self.lr, n, step, self.per_step) * grads[n] for n, p in params.items()}
        return new, state


@dataclass(frozen=True)
class AdamSettings:
    """Constants of the Adam inner rule (those of ``torch.optim.Adam``)."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    #: added under the square root of ``v_hat``: keeps the second derivative finite where a gradient is exactly 0
    sqrt_floor: float = 1e-30


INNER_ADAM = AdamSettings()
INNER_OPTIMIZERS = ("sgd", "adam")


class AdamRule:
    """``theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)``: Adam's bias-corrected moments, with a float or
    per-parameter tensor learning rate (Meta-SGD over Adam directions). The same numbers as ``torch.optim.Adam``
    for a float ``lr``, but differentiable in ``lr`` (and, second order, in the parameters)."""

    def __init__(self, lr: float | Mapping[str, torch.Tensor], settings: AdamSettings = INNER_ADAM,
                 per_step: bool = False):
        self.lr = lr
        self.settings = settings
        self.per_step = per_step

    def init_state(self, params: Params):
        zeros = {n: torch.zeros_like(p) for n, p in params.items()}
        return zeros, dict(zeros)

    def step(self, state, params: Params, grads: Params, loss: torch.Tensor, step: int):
        s = self.settings
        first, second = state
        first = {n: s.beta1 * first[n] + (1 - s.beta1) * grads[n] for n in params}
        second = {n: s.beta2 * second[n] + (1 - s.beta2) * grads[n] * grads[n] for n in params}
        correct1, correct2 = 1 - s.beta1 ** (step + 1), 1 - s.beta2 ** (step + 1)
        new = {}
        for n, p in params.items():
            direction = (first[n] / correct1) / ((second[n] / correct2 + s.sqrt_floor).sqrt() + s.eps)
            new[n] = p - rate_at(self.lr, n, step, self.per_step) * direction
        return new, (first, second)


def inner_rule(lr: float | Mapping[str, torch.Tensor], optimizer: str = "sgd", per_step: bool = False):
    """The inner update rule for ``optimizer`` (``"sgd"`` or ``"adam"``) with a float or per-parameter ``lr``
    (``per_step``: one rate per step and element, see :func:`rate_at`)."""
    if optimizer == "sgd":
        return SGDRule(lr, per_step=per_step)
    if optimizer == "adam":
        return AdamRule(lr, per_step=per_step)
    raise ValueError(f"inner_optimizer={optimizer!r} is unknown: choose one of {', '.join(INNER_OPTIMIZERS)}.")


def _all_finite(tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def inner_loop(
    loss_fn: LossFn,
    params: Params,
    support: Sequence[Batch],
    steps: int,
    rule,
    first_order: bool,
    query: Sequence[Batch] | None = None,
    query_weights: Sequence[float] | None = None,
    callback: StepCallback | None = None,
    query_loss_fn: LossFn | None = None,
) -> InnerLoopResult:
    """Run ``steps`` updates of ``rule`` from ``params`` on the support batches.

    Args:
        loss_fn: ``(params, batches) -> scalar`` (see :func:`make_loss_fn`).
        params: initial adapted parameters, name -> tensor (the model's own leaves, or detached copies).
        support: the support batches of one task.
        rule: an update rule (:class:`SGDRule` or :class:`~hf_metatts.meta.meta_lstm.MetaLSTMRule`).
        first_order: compute support gradients on detached copies (no second derivatives).
        query, query_weights: when given, the query loss after step t+1 is weighted by ``query_weights[t]``
            (zero weights are skipped) and summed into ``result.query_loss`` (MAML++ multi-step loss).
        query_loss_fn: the loss of those query batches (default: ``loss_fn``; differs when the support loss has
            an inner-loop-only term such as the global-variance term).
        callback: ``callback(step, support_loss, params)`` after each step.

    Returns:
        :class:`InnerLoopResult`. Stops early with ``finite=False`` on NaN or inf; never raises for them.
    """
    result = InnerLoopResult(params=dict(params))
    state = rule.init_state(params)
    names = list(params)
    weighted = None
    for step in range(steps):
        if first_order:
            leaves = {n: p.detach().requires_grad_(True) for n, p in params.items()}
            loss = loss_fn(leaves, support)
            grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
            loss = loss.detach()
        else:
            loss = loss_fn(params, support)
            grads = torch.autograd.grad(loss, [params[n] for n in names], create_graph=True, allow_unused=True)
        grads = {n: torch.zeros_like(params[n]) if g is None else g for n, g in zip(names, grads)}
        result.support_losses.append(float(loss.detach()))
        if not math.isfinite(result.support_losses[-1]) or not _all_finite(grads.values()):
            result.finite = False
            return result
        if first_order:
            grads = {n: g.detach() for n, g in grads.items()}
        params, state = rule.step(state, params, grads, loss, step)
        if not _all_finite(p.detach() for p in params.values()):
            result.finite = False
            return result
        result.params = params
        if callback is not None:
            callback(step + 1, result.support_losses[-1], params)
        if query is not None and query_weights is not None and query_weights[step] > 0:
            q = (query_loss_fn or loss_fn)(params, query)
            result.query_losses.append(float(q.detach()))
            weighted = q * query_weights[step] if weighted is None else weighted + q * query_weights[step]
    result.query_loss = weighted
    return result


def maml_adapt(
    model: torch.nn.Module,
    params: Params,
    support: Sequence[Batch],
    steps: int,
    lr: float | Mapping[str, torch.Tensor],
    first_order: bool = False,
) -> Params:
    """Functional MAML / Meta-SGD adaptation: returns the adapted parameters (model untouched)."""
    return inner_loop(make_loss_fn(model), params, support, steps, SGDRule(lr), first_order).params
