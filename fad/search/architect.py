"""The architect: the alpha step of a DARTS search, first or second order.

Each search iteration first moves the alphas on a batch of the alpha stream, then the weights on a
batch of the weight stream (see ``fad.search.searcher``). The architect computes the alpha
gradient and steps the alpha optimizer (Adam); it leaves the network's weights and buffers
(BatchNorm statistics) exactly as it found them.

- First order: grad = dL_alpha(w, alpha) / dalpha at the *current* weights w.
- Second order (DARTS's unrolled step): with w' = w - lr * (SGD update of L_weight at w), exactly
  the step the weights' SGD would take (per-group lr, momentum buffer, weight decay; no clipping),

      grad = dL_alpha(w', alpha)/dalpha - H v,   v = lr * dL_alpha(w', alpha)/dw'  (per group lr)
      H v ~ (dL_weight(w + eps v)/dalpha - dL_weight(w - eps v)/dalpha) / (2 eps),
      eps = 0.01 / ||v||.

  The virtual step is taken in place on the network (weights saved and restored), never on a
  deep copy. Every forward pass of the weight batch starts from the same torch RNG state, so
  random input sizes (multi-scale training) are the same at w, w + eps v and w - eps v.

In a distributed run the architect gets the unwrapped model; gradients are averaged over
processes so that every rank takes the same alpha step.

Mixed precision (SOLVER.AMP, a `Precision`): the forward passes of the alpha loss and of the
virtual step run under autocast, and with fp16 their losses are scaled by S before
differentiation (the weight gradients and v are divided by S again: S is a power of two, so
exactly). The two finite-difference passes of H v run in float32 whatever the mode: in half
precision w +- eps v rounds back to w for most weights and the difference would be rounding
noise. The alphas, weights and optimizer states stay float32. Under fp16 the alpha gradient is
handed to the shared loss scaler, which skips the Adam step when it is not finite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from fad.errors import FadError
from fad.runtime.distributed import mean_across_processes
from fad.runtime.precision import Precision
from fad.search_space.towers import alphas as model_alphas

Batch = Any  # whatever ``loss_fn`` accepts; for detectors (list of images, list of targets)
LossFn = Callable[[nn.Module, Batch], Tensor]
FD_RADIUS = 0.01  # DARTS: eps = 0.01 / ||v||


def detection_loss(model: nn.Module, batch: Batch) -> Tensor:
    """The summed training losses of a detector on (images, targets)."""
    images, targets = batch
    return sum(model(images, targets).values())


def _grads(loss: Tensor, params: Sequence[Tensor]) -> list[Tensor]:
    """d loss / d params, zeros for the params the loss does not depend on."""
    found = torch.autograd.grad(loss, list(params), allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, found, strict=True)]


def _global_norm(tensors: Sequence[Tensor]) -> Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


class Architect:
    """Computes alpha gradients and steps the alpha optimizer.

    Args:
        model: the (unwrapped) network holding the search towers' alphas.
        alpha_optimizer: the optimizer over the alphas (Adam in the search).
        param_optimizer: the network parameters' SGD; the second-order virtual step mirrors its update
            (each group's lr, momentum, dampening, weight decay) and reads its momentum buffers.
        first_order: first-order (default) or second-order (unrolled) alpha gradients.
        loss_fn: ``loss_fn(model, batch) -> scalar``; default: the detector's summed losses.
        fd_radius: the finite-difference step is ``fd_radius / ||v||`` (DARTS: 0.01).
        precision: autocast and the fp16 loss scaler, shared with the weight step (whose
            `update` ends each iteration); default float32.
    """

    def __init__(
        self,
        model: nn.Module,
        alpha_optimizer: torch.optim.Optimizer,
        param_optimizer: torch.optim.Optimizer,
        *,
        first_order: bool = True,
        loss_fn: LossFn = detection_loss,
        fd_radius: float = FD_RADIUS,
        precision: Precision | None = None,
    ) -> None:
        self.model = model
        self.precision = precision or Precision()
        self.alphas = model_alphas(model)
        if not self.alphas:
            raise FadError("architect: the model has no alphas (build it with MODEL.FAD.SEARCH)")
        self.alpha_optimizer = alpha_optimizer
        self.param_optimizer = param_optimizer
        self.first_order = first_order
        self.loss_fn = loss_fn
        self.fd_radius = fd_radius
        if not first_order:
            if not isinstance(param_optimizer, torch.optim.SGD):
                raise FadError(
                    "architect: the second-order step mirrors SGD; use SOLVER.OPTIMIZER SGD "
                    f"(got {type(param_optimizer).__name__}) or SOLVER.SEARCH.FIRST_ORDER True"
                )
            for group in param_optimizer.param_groups:
                if group.get("nesterov") or group.get("maximize"):
                    raise FadError(
                        "architect: the second-order step mirrors plain SGD; nesterov and "
                        "maximize are not supported"
                    )

    def _param_groups(self) -> Iterator[tuple[Tensor, dict[str, Any]]]:
        """(parameter, its SGD group) for every network parameter the optimizer updates (alphas
        excepted, should the optimizer hold them too)."""
        alpha_ids = {id(a) for a in self.alphas}
        for group in self.param_optimizer.param_groups:
            for p in group["params"]:
                if p.requires_grad and id(p) not in alpha_ids:
                    yield p, group

    @contextlib.contextmanager
    def _preserve_buffers(self) -> Iterator[None]:
        """Put every buffer (BatchNorm statistics) back as it was on exit."""
        saved = [(b, b.detach().clone()) for b in self.model.buffers()]
        try:
            yield
        finally:
            with torch.no_grad():
                for buffer, value in saved:
                    buffer.copy_(value)

    def _loss(self, batch: Batch) -> Tensor:
        """The loss of ``batch`` at the current weights, forward under autocast."""
        with self.precision.autocast():
            return self.loss_fn(self.model, batch)

    def backward(self, alpha_batch: Batch, weight_batch: Batch | None = None) -> Tensor:
        """Set ``alpha.grad`` for every alpha (times the loss scale under fp16: `step` unscales
        it); return the alpha batch's loss (detached; at the virtual weights w' in the
        second-order step).

        ``weight_batch`` is needed by the second-order step only.
        """
        with self._preserve_buffers():
            if self.first_order:
                loss = self._loss(alpha_batch)
                grads = _grads(self.precision.scale(loss), self.alphas)
            else:
                if weight_batch is None:
                    raise FadError("architect: the second-order step needs the weight batch")
                loss, grads = self._unrolled(alpha_batch, weight_batch)
        grads = mean_across_processes(grads)
        for alpha, grad in zip(self.alphas, grads, strict=True):
            alpha.grad = grad.detach()
        return loss.detach()

    def step(
        self,
        alpha_batch: Batch,
        weight_batch: Batch | None = None,
        check: Callable[[Tensor, Tensor], None] | None = None,
    ) -> Tensor:
        """One alpha update; ``check(loss, grad_norm)`` may stop it before the optimizer step."""
        self.alpha_optimizer.zero_grad(set_to_none=True)
        loss = self.backward(alpha_batch, weight_batch)
        self.precision.unscale_(self.alpha_optimizer)
        if check is not None:
            check(loss, self.grad_norm())
        self.precision.step(self.alpha_optimizer)
        self.alpha_optimizer.zero_grad(set_to_none=True)
        return loss

    def grad_norm(self) -> Tensor:
        """The global L2 norm of the alphas' current gradients."""
        return _global_norm(
            [a.grad if a.grad is not None else torch.zeros_like(a) for a in self.alphas]
        )

    def _unrolled(self, alpha_batch: Batch, weight_batch: Batch) -> tuple[Tensor, list[Tensor]]:
        pairs = list(self._param_groups())
        params = [p for p, _ in pairs]
        saved = [p.detach().clone() for p in params]
        rng_weight_batch = torch.get_rng_state()
        scale = self.precision.loss_scale()  # S (1 unless fp16)
        weight_loss = self.precision.scale(self._loss(weight_batch))
        weight_grads = mean_across_processes([g / scale for g in _grads(weight_loss, params)])
        try:
            self._virtual_sgd_step(pairs, weight_grads)
            loss = self._loss(alpha_batch)
            found = _grads(self.precision.scale(loss), [*self.alphas, *params])
            rng_after = torch.get_rng_state()
            direct = found[: len(self.alphas)]  # times S
            at_virtual = mean_across_processes(found[len(self.alphas) :])
            v = [g * (group["lr"] / scale) for g, (_, group) in zip(at_virtual, pairs, strict=True)]
            self._restore(params, saved)
            hvp = self.hessian_vector_product(v, weight_batch, rng_weight_batch)
            torch.set_rng_state(rng_after)
        finally:
            self._restore(params, saved)
        return loss, [d - scale * h for d, h in zip(direct, hvp, strict=True)]  # both times S

    def _virtual_sgd_step(
        self, pairs: list[tuple[Tensor, dict[str, Any]]], grads: list[Tensor]
    ) -> None:
        """w <- w - lr * update, the update torch's SGD would apply for ``grads`` (in place)."""
        state = self.param_optimizer.state
        with torch.no_grad():
            for (p, group), g in zip(pairs, grads, strict=True):
                update = g + group["weight_decay"] * p
                momentum = group.get("momentum", 0.0)
                buffer = state.get(p, {}).get("momentum_buffer")
                if momentum and buffer is not None:
                    update = momentum * buffer + (1 - group.get("dampening", 0.0)) * update
                p.sub_(group["lr"] * update)

    def hessian_vector_product(
        self, v: Sequence[Tensor], weight_batch: Batch, rng_state: Tensor | None = None
    ) -> list[Tensor]:
        """(d^2 L_weight / dalpha dw) v by central differences around the current weights.

        ``v`` is one tensor per parameter of the parameters' optimizer (in its order); both forward
        passes start from ``rng_state`` (default: the current torch RNG state) and run in float32,
        outside autocast. The parameters are restored exactly afterwards.
        """
        params = [p for p, _ in self._param_groups()]
        norm = float(_global_norm(v))
        if norm == 0.0:
            return [torch.zeros_like(a) for a in self.alphas]
        eps = self.fd_radius / norm
        rng_state = torch.get_rng_state() if rng_state is None else rng_state
        saved = [p.detach().clone() for p in params]
        sides = []
        try:
            for sign in (1.0, -1.0):
                with torch.no_grad():
                    for p, w, d in zip(params, saved, v, strict=True):
                        p.copy_(w + sign * eps * d)
                torch.set_rng_state(rng_state)
                with self.precision.float32():  # the backward too: its ops would autocast
                    loss = self.loss_fn(self.model, weight_batch)
                    sides.append(_grads(loss, self.alphas))
        finally:
            self._restore(params, saved)
        return [(pos - neg) / (2 * eps) for pos, neg in zip(*sides, strict=True)]

    @staticmethod
    def _restore(params: list[Tensor], saved: list[Tensor]) -> None:
        with torch.no_grad():
            for p, w in zip(params, saved, strict=True):
                p.copy_(w)
