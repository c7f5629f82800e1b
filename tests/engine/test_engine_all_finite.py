import pytest
import torch

from fad.engine.weight_step import all_finite

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "tensors, finite",
    [
        ([torch.ones(3), torch.full((2,), 3e38)], True),  # a max cannot overflow where a sum would
        ([torch.ones(3), torch.tensor([1.0, NAN])], False),
        ([torch.tensor([NAN, 5.0]), torch.ones(3)], False),
        ([torch.tensor([-INF]), torch.ones(2)], False),
        ([torch.ones(2), torch.tensor([INF], dtype=torch.float16)], False),
        ([torch.ones(2), torch.ones(2, dtype=torch.bfloat16)], True),
        ([torch.zeros(0), torch.ones(1)], True),
        ([], True),
    ],
)
def test_all_finite_sees_every_nan_and_inf_in_one_pass(tensors, finite):
    assert all_finite(tensors) is finite


def test_all_finite_reads_parameters_without_touching_their_graph():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    assert all_finite([p]) and p.grad is None
    with torch.no_grad():
        p[0] = NAN
    assert not all_finite([p])
