"""Process-group helpers: one process per device, started by torchrun (or the legacy launcher).

Everything works unchanged in a single process, where these helpers are no-ops.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from fad.runtime.errors import FadError


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return get_rank() == 0


def init_from_env(local_rank: int | None = None) -> torch.device:
    """Join the process group described by torchrun's environment (if any); pick the device.

    NCCL on GPU, gloo on CPU. `local_rank` is the legacy `--local_rank` argument of
    `torch.distributed.launch`; LOCAL_RANK from the environment wins when both are set.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", local_rank if local_rank is not None else 0))
    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not is_distributed():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo", timeout=timedelta(minutes=30)
        )
    return device


def leave_process_group() -> None:
    """Destroy the process group (if any) before the interpreter exits: a gloo group left to
    the interpreter's teardown can abort the process ("terminate called without an active
    exception") after its work is done."""
    if is_distributed():
        dist.destroy_process_group()


def synchronize() -> None:
    if is_distributed() and get_world_size() > 1:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum over processes (a new tensor; `tensor` itself in one process)."""
    if is_distributed() and get_world_size() > 1:
        tensor = tensor.detach().clone()
        dist.all_reduce(tensor)
    return tensor


def mean_across_processes(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The element-wise mean of each tensor over processes, in one all-reduce (detached; the
    tensors themselves in a single process)."""
    world = get_world_size()
    if world == 1 or not tensors:
        return tensors
    flat = all_reduce_sum(torch.cat([t.detach().reshape(-1) for t in tensors])) / world
    return [chunk.view_as(t) for chunk, t in zip(flat.split([t.numel() for t in tensors]), tensors)]


def any_across_processes(flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is True on any rank (to stop all ranks together)."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce_sum(value).item() > 0)


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (a one-element list in a single process)."""
    if not is_distributed() or get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def reduce_loss_dict(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """Loss values averaged over processes, as floats for logging."""
    names = sorted(losses)
    (values,) = mean_across_processes([torch.stack([losses[k].detach().float() for k in names])])
    return {k: float(v) for k, v in zip(names, values)}


def check_same_across_processes(tensors: list[torch.Tensor], what: str) -> None:
    """Raise on every rank if `tensors` are not bit-identical on all ranks (e.g. the alphas)."""
    if not is_distributed() or get_world_size() == 1:
        return
    flat = torch.cat([t.detach().reshape(-1).double().cpu() for t in tensors])
    digest = (
        flat.sum().item(),
        flat.square().sum().item(),
        flat.abs().max().item() if flat.numel() else 0.0,
    )
    digests = all_gather_objects(digest)
    if any(d != digests[0] for d in digests):
        raise FadError(f"{what} differ across processes: {digests}")


def wrap_ddp(
    model: torch.nn.Module, device: torch.device, *, find_unused_parameters: bool = False
) -> torch.nn.Module:
    """`model` under DistributedDataParallel when several processes run, else `model` itself.
    `find_unused_parameters`: a step may leave parameters without gradients (sampled ops)."""
    if get_world_size() == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused_parameters
    )
