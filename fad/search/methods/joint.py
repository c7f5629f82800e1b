"""One-level DARTS: the weights and the alphas descend the same batch's loss, one forward and one
backward per iteration.

DARTS's bilevel search moves the alphas on a second batch (an alpha stream) before each weight
step; the one-level form (DARTS's own ablation; "one-level" in later work) takes the alphas'
gradient from the weight step's backward, which computes it anyway: an alpha step costs nothing
more than the weight step, so a search of a given time takes about twice the alpha steps, each on
the weight batch (SOLVER.IMS_PER_BATCH images). The alphas keep their own optimizer (Adam,
SOLVER.SEARCH.BASE_LR_ALPHA); the weights are clipped without them. As the original FAD, the data
of both is the training set (its default alpha stream draws from the same images).
"""

from __future__ import annotations

from torch import Tensor

from fad.errors import FadError
from fad.search.methods.base import Batch, Check, SearchMethod


class OneLevel(SearchMethod):
    """Alphas stepped on the weight batch's gradient, after each weight step."""

    name = "one_level"
    uses_alpha_batch = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.architect.precision.scaling:
            raise FadError(
                "SOLVER.SEARCH.METHOD 'one_level' steps the alphas on the weight step's "
                "gradients, which fp16 loss scaling leaves scaled: use SOLVER.AMP bf16 or off"
            )
        in_weight_step = {
            id(p) for g in self.architect.param_optimizer.param_groups for p in g["params"]
        }
        if any(id(a) in in_weight_step for a in self.arch_params()):
            raise FadError(
                "SOLVER.SEARCH.METHOD 'one_level' steps the alphas with their own optimizer: set "
                "SOLVER.SEARCH.ALPHAS_IN_WEIGHT_STEP False"
            )
        if self.options.budget is not None:
            raise FadError(
                "SOLVER.SEARCH.COST_BUDGET: 'one_level' has no separate alpha loss to add the "
                "penalty to; use another SOLVER.SEARCH.METHOD"
            )

    def alpha_step(
        self, alpha_batch: Batch | None, weight_batch: Batch, check: Check | None
    ) -> Tensor | None:
        self.architect.alpha_optimizer.zero_grad(set_to_none=True)  # the weight step fills them
        return None

    def after_weight_step(self, losses: dict[str, Tensor], check: Check | None) -> Tensor:
        optimizer = self.architect.alpha_optimizer
        loss = sum(value.detach() for value in losses.values())
        if check is not None:
            check(loss, self.architect.grad_norm())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss
