"""Meta-LSTM optimiser (Ravi & Larochelle, 2017): a coordinate-wise LSTM whose cell state is the parameters.

For every coordinate j of the flattened adapted parameters (P coordinates, shared weights):

* a first LSTM cell reads the preprocessed gradient and loss ``x_t = [pre(g_t), pre(L_t)]`` (4 features)
  and outputs ``h_t`` (P, H);
* the gates read ``h_t``, the previous parameter and the previous gate value::

      i_t = sigmoid(W_i . [h_t, theta_{t-1}, i_{t-1}] + b_i)      (input gate: the step size)
      f_t = sigmoid(W_f . [h_t, theta_{t-1}, f_{t-1}] + b_f)      (forget gate: how much to keep)
      theta_t = f_t * theta_{t-1} - i_t * g_t                     (the cell state is the parameters)

``b_i = logit(inner_lr)``, ``b_f`` large and the gate weights tiny, so the first update at initialisation
is almost exactly SGD with ``inner_lr``. The initial state is learned: ``theta_0`` is the model's own
adapted parameters (meta-trained by the outer loop), and ``h_0``, ``c_0``, ``i_0``, ``f_0`` are parameters.
Gradient preprocessing (Andrychowicz et al., 2016): ``x -> (log|x| / p, sign x)`` if ``|x| >= e^-p``,
else ``(-1, e^p x)``.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

Params = dict[str, torch.Tensor]


def preprocess(x: torch.Tensor, p: float = 10.0) -> torch.Tensor:
    """(...,) -> (..., 2): the log/sign preprocessing of gradients and losses."""
    big = x.abs() >= math.exp(-p)
    first = torch.where(big, torch.log(x.abs().clamp_min(math.exp(-p))) / p, torch.full_like(x, -1.0))
    second = torch.where(big, torch.sign(x), math.exp(p) * x)
    return torch.stack([first, second], dim=-1)


def flatten(params: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Name -> tensor dict to a (P,) vector (in dict order)."""
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflatten(vector: torch.Tensor, like: Mapping[str, torch.Tensor]) -> Params:
    """(P,) vector back to a dict shaped like ``like``."""
    out, offset = {}, 0
    for name, p in like.items():
        out[name] = vector[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return out


@dataclass
class MetaLSTMState:
    """Recurrent state over P coordinates: h, c (P, H) of the first cell, i, f (P, 1) previous gates."""

    h: torch.Tensor
    c: torch.Tensor
    i: torch.Tensor
    f: torch.Tensor


class MetaLSTMOptimizer(nn.Module):
    """The learned optimiser. ``rule()`` gives an update rule for :func:`~hf_metatts.meta.maml.inner_loop`.

    Args:
        hidden_size: H, the first LSTM cell's hidden size.
        inner_lr: the SGD step size the input gate starts at.
        forget_bias: initial forget-gate bias (sigmoid close to 1 keeps the parameters).
        init_scale: gate weights start uniform in ``[-init_scale, init_scale]``.
        preprocess_p: p of the gradient preprocessing.
    """

    def __init__(
        self,
        hidden_size: int = 20,
        inner_lr: float = 0.01,
        forget_bias: float = 8.0,
        init_scale: float = 1e-3,
        preprocess_p: float = 10.0,
    ):
        super().__init__()
        self.hidden_size, self.preprocess_p = hidden_size, preprocess_p
        self.cell = nn.LSTMCell(4, hidden_size)
        self.w_i = nn.Parameter(torch.empty(hidden_size + 2).uniform_(-init_scale, init_scale))
        self.w_f = nn.Parameter(torch.empty(hidden_size + 2).uniform_(-init_scale, init_scale))
        self.b_i = nn.Parameter(torch.tensor(math.log(inner_lr / (1.0 - inner_lr))))
        self.b_f = nn.Parameter(torch.tensor(float(forget_bias)))
        self.h0 = nn.Parameter(torch.zeros(hidden_size))
        self.c0 = nn.Parameter(torch.zeros(hidden_size))
        self.i0 = nn.Parameter(torch.tensor(float(inner_lr)))
        self.f0 = nn.Parameter(torch.sigmoid(torch.tensor(float(forget_bias))))

    def init_state(self, num_coordinates: int) -> MetaLSTMState:
        """The learned initial state expanded over P coordinates."""
        p = num_coordinates
        return MetaLSTMState(
            h=self.h0.expand(p, -1),
            c=self.c0.expand(p, -1),
            i=self.i0.expand(p, 1),
            f=self.f0.expand(p, 1),
        )

    def update(
        self, state: MetaLSTMState, theta: torch.Tensor, grad: torch.Tensor, loss: torch.Tensor
    ) -> tuple[torch.Tensor, MetaLSTMState]:
        """One step. theta, grad: (P,); loss: scalar. Returns the new theta (P,) and state."""
        p = theta.shape[0]
        x = torch.cat(
            [preprocess(grad, self.preprocess_p), preprocess(loss.reshape(1), self.preprocess_p).expand(p, 2)], dim=-1
        )
        h, c = self.cell(x, (state.h, state.c))
        prev = theta.unsqueeze(-1)
        i = torch.sigmoid(torch.cat([h, prev, state.i], dim=-1) @ self.w_i + self.b_i).unsqueeze(-1)
        f = torch.sigmoid(torch.cat([h, prev, state.f], dim=-1) @ self.w_f + self.b_f).unsqueeze(-1)
        new_theta = f.squeeze(-1) * theta - i.squeeze(-1) * grad
        return new_theta, MetaLSTMState(h=h, c=c, i=i, f=f)

    def rule(self) -> "MetaLSTMRule":
        return MetaLSTMRule(self)


class MetaLSTMRule:
    """Adapter of :class:`MetaLSTMOptimizer` to the inner-loop rule protocol (init_state / step)."""

    def __init__(self, optimizer: MetaLSTMOptimizer):
        self.optimizer = optimizer

    def init_state(self, params: Params) -> MetaLSTMState:
        return self.optimizer.init_state(sum(p.numel() for p in params.values()))

    def step(self, state: MetaLSTMState, params: Params, grads: Params, loss: torch.Tensor, step: int):
        theta, state = self.optimizer.update(state, flatten(params), flatten(grads), loss)
        return unflatten(theta, params), state
