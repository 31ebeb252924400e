"""
Distributed helpers: torchrun (DDP, nccl on GPU, gloo on CPU) or a plain single process.

Under ``torchrun`` the RANK / WORLD_SIZE / LOCAL_RANK environment variables select DDP; without
them everything runs in one process and the helpers reduce to no-ops.
"""

from dataclasses import dataclass
import os

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """
    Where this process sits.

    :param rank: Global rank.
    :param world_size: Number of processes.
    :param local_rank: Rank on this machine (selects the GPU).
    :param device: Device this process computes on.
    :param distributed: True under torchrun with more than one process group member.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    distributed: bool

    @property
    def is_main(self) -> bool:
        """:return: True on rank 0 (the process that logs and writes files)."""
        return self.rank == 0


def init_distributed(device: str = 'auto') -> DistInfo:
    """
    Initialise the process group when launched by torchrun; otherwise one process.

    :param device: 'auto' (CUDA if available), 'cpu' or 'cuda'.
    :return: This process's place.
    """
    use_cuda = torch.cuda.is_available() if device == 'auto' else device.startswith('cuda')
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError('device cuda requested but CUDA is not available')
    if 'RANK' in os.environ and 'WORLD_SIZE' in os.environ:
        rank = int(os.environ['RANK'])
        world = int(os.environ['WORLD_SIZE'])
        local = int(os.environ.get('LOCAL_RANK', 0))
        if use_cuda:
            torch.cuda.set_device(local)
        if not dist.is_initialized():
            dist.init_process_group(backend='nccl' if use_cuda else 'gloo')
        dev = torch.device('cuda', local) if use_cuda else torch.device('cpu')
        return DistInfo(rank, world, local, dev, world > 1)
    dev = torch.device('cuda') if use_cuda else torch.device('cpu')
    return DistInfo(0, 1, 0, dev, False)


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over all processes in place (no-op in a single process)."""
    if info.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op in a single process)."""
    if info.distributed:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    """Tear the process group down."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
