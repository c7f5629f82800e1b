"""The search-method protocol: what `fad search` asks of a method, whatever it is.

A search method owns how the architecture is searched: its architecture parameters (the search
towers' alphas, and betas where the supernet has edge normalisation), how the towers relax them
before each forward (`begin_iteration`: e.g. a temperature and a sampling seed), its alpha step
on a batch of the alpha stream, how a genotype is read off them, and its state in a checkpoint.
Training's weight step is shared by every method (`fad.search.search_step`). New methods subclass
`SearchMethod` and add one line to `fad.search.methods.METHODS`.

One level (SOLVER.SEARCH.ONE_LEVEL, any first-order method): DARTS's bilevel search moves the
alphas on a second batch before each weight step; the one-level form (DARTS's own ablation) takes
the alphas' gradient from the weight step's backward, which computes it anyway, and steps them
after it with their own optimizer: one forward and backward per iteration instead of two. As in
the original FAD, whose default alpha stream draws from the training images, the alphas then
follow the training loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from fad.errors import FadError
from fad.runtime.precision import Precision
from fad.search.architect import Architect, Batch, LossFn, detection_loss
from fad.search.budget import Budget
from fad.search.sharpen import EntropyPressure
from fad.search_space.genotype import Genotype
from fad.search_space.towers import SearchTower, alphas, derive_genotypes, search_towers

Check = Callable[[Tensor, Tensor], None]


@dataclass(frozen=True)
class MethodOptions:
    """What every method is built from (SOLVER.SEARCH.* and the run's settings)."""

    seed: int = 0
    max_iter: int = 1
    warmup_iters: int = 0
    tau: tuple[float, float] = (10.0, 0.1)  # sampled methods: temperature at start, at end
    one_level: bool = (
        False  # alphas stepped on the weight step's gradient (SOLVER.SEARCH.ONE_LEVEL)
    )
    loss_fn: LossFn = detection_loss
    budget: Budget | None = None  # a cost penalty on the alpha loss (fad.search.budget)
    entropy: EntropyPressure | None = None  # an entropy penalty, ramped (fad.search.sharpen)


class SearchMethod:
    """One search method over a model's search towers (see the module doc).

    Args:
        model: the unwrapped model holding the search towers.
        alpha_optimizer: the optimizer over `arch_params()` (Adam in the search).
        param_optimizer: the network parameters' optimizer (the second-order step mirrors it).
        options: the method's settings.
        precision: autocast and the fp16 loss scaler, shared with the weight step.
    """

    name: ClassVar[str]
    first_order: ClassVar[bool] = True  # the alpha gradient at w (False: DARTS's unrolled w')
    samples: ClassVar[bool] = False  # a forward computes part of the supernet (DDP must know)

    def __init__(
        self,
        model: nn.Module,
        alpha_optimizer: torch.optim.Optimizer,
        param_optimizer: torch.optim.Optimizer,
        options: MethodOptions,
        precision: Precision | None = None,
    ) -> None:
        self.model = model
        self.options = options
        self.towers: list[SearchTower] = list(search_towers(model))
        self.iteration = 0
        if not self.towers:
            raise FadError(f"search method {self.name!r}: the model has no search towers")
        self.architect = Architect(
            model,
            alpha_optimizer,
            param_optimizer,
            first_order=self.first_order,
            loss_fn=options.loss_fn if not self._penalized() else self._penalized_loss,
            precision=precision,
        )
        if options.one_level:
            self._check_one_level()

    def _penalized(self) -> bool:
        return self.options.budget is not None or self.options.entropy is not None

    def alpha_penalty(self) -> Tensor | None:
        """What the alpha loss adds to the detection loss at this iteration: the cost budget's
        penalty and the entropy pressure's, None without either (the same on every process:
        the alphas stay in lockstep)."""
        terms = []
        if self.options.budget is not None:
            terms.append(self.options.budget.penalty(self.towers))
        if self.options.entropy is not None:
            terms.append(self.options.entropy.penalty(self.towers, self.iteration))
        return sum(terms[1:], terms[0]) if terms else None

    def _penalized_loss(self, net: nn.Module, batch: Batch) -> Tensor:
        return self.options.loss_fn(net, batch) + self.alpha_penalty()

    @property
    def uses_alpha_batch(self) -> bool:
        """False for a one-level search: the alpha stream's batches are not used."""
        return not self.options.one_level

    def _check_one_level(self) -> None:
        if not self.first_order:
            raise FadError(
                f"SOLVER.SEARCH.ONE_LEVEL: {self.name!r} is second order, which needs an alpha "
                "batch; use a first-order method"
            )
        if self.architect.precision.scaling:
            raise FadError(
                "SOLVER.SEARCH.ONE_LEVEL steps the alphas on the weight step's gradients, which "
                "fp16 loss scaling leaves scaled: use SOLVER.AMP bf16 or off"
            )
        stepped = {id(p) for g in self.architect.param_optimizer.param_groups for p in g["params"]}
        if any(id(a) in stepped for a in self.arch_params()):
            raise FadError(
                "SOLVER.SEARCH.ONE_LEVEL steps the alphas with their own optimizer: set "
                "SOLVER.SEARCH.ALPHAS_IN_WEIGHT_STEP False"
            )

    @classmethod
    def check_supernet(cls, partial_channels: int, edge_normalization: bool) -> None:
        """Raise a FadError naming the config keys when the supernet lacks what the method
        needs (partial channels: MODEL.FAD.PARTIAL_CHANNELS, edge weights:
        MODEL.FAD.EDGE_NORMALIZATION)."""

    def arch_params(self) -> list[nn.Parameter]:
        """The parameters the alpha optimizer moves."""
        return alphas(self.model)

    def prepare(self, iteration: int) -> None:
        """Enter `iteration` (before its alpha and weight steps): the penalties' schedule, then
        the method's `begin_iteration`."""
        self.iteration = iteration
        self.begin_iteration(iteration)

    def begin_iteration(self, iteration: int) -> None:
        """Prepare the towers' relaxation for `iteration` (before its alpha and weight steps)."""

    def alpha_step(
        self, alpha_batch: Batch | None, weight_batch: Batch, check: Check | None
    ) -> Tensor | None:
        """One update of the architecture parameters before the weight step; returns the alpha
        batch's loss (None in a one-level search: `after_weight_step` updates them)."""
        if self.options.one_level:
            self.architect.alpha_optimizer.zero_grad(set_to_none=True)  # the weight step fills
            return None
        return self.architect.step(alpha_batch, weight_batch, check=check)

    def after_weight_step(self, losses: dict[str, Tensor], check: Check | None) -> Tensor | None:
        """After the weight step of an iteration that searches: in a one-level search, the alpha
        update on that step's gradients (its loss returned); else nothing (None)."""
        if not self.options.one_level:
            return None
        loss = sum(value.detach() for value in losses.values())
        penalty = self.alpha_penalty()
        if penalty is not None:
            penalty.backward()
            loss = loss + penalty.detach()
        if check is not None:
            check(loss, self.architect.grad_norm())
        self.architect.alpha_optimizer.step()
        self.architect.alpha_optimizer.zero_grad(set_to_none=True)
        return loss

    def derive(self) -> dict[str, Genotype]:
        """{"box": ..., "cls": ...}: the discrete cells of the current parameters."""
        return derive_genotypes(self.model)

    def values(self, iteration: int) -> dict[str, float]:
        """What to log at `iteration` besides the losses (e.g. the temperature, the expected
        head GFLOPs under a budget)."""
        values = {}
        budget, entropy = self.options.budget, self.options.entropy
        if budget is not None:
            values["expected_gflops"] = budget.report(self.model, self.derive())["expected_gflops"]
        if entropy is not None:
            values["entropy_weight"] = entropy.weight * entropy.ramp(iteration)
        return values

    def state_dict(self) -> dict[str, Any]:
        """The method's state besides the alpha optimizer's (plain data; name checked on load)."""
        return {"name": self.name}

    def load_state_dict(self, state: dict[str, Any], source: str) -> None:
        if state.get("name") != self.name:
            raise FadError(
                f"{source}: a search of method {state.get('name')!r}, resumed as "
                f"{self.name!r}; set SOLVER.SEARCH.METHOD {state.get('name')!r} or pick another "
                "OUTPUT_DIR"
            )

    def find_unused_parameters(self) -> bool:
        """Whether DDP must expect parameters without gradients in a step."""
        return self.samples
