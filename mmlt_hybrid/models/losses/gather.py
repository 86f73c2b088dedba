"""All-gather across processes that carries gradients back to every rank.

``torch.distributed.all_gather`` returns tensors that are cut from the
autograd graph, so the loss terms that a rank computes on other ranks'
embeddings would send no gradient to the ranks that produced them. The
gather below is an autograd function whose backward sums the incoming
gradients over all ranks (every rank's loss may depend on every rank's
embeddings) and hands each rank the slice of its own rows. Ranks may hold
different numbers of rows.

:func:`global_mean` turns the local sum of per-row loss terms into the
loss of the whole global batch, for the losses whose rows are spread over
the ranks.
"""
from typing import List, Tuple

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return (dist.is_available() and dist.is_initialized()
            and dist.get_world_size() > 1)


def _gather_sizes(tensor: torch.Tensor) -> List[int]:
    """Number of rows (dim 0) of ``tensor`` on every rank, in rank order."""
    world_size = dist.get_world_size()
    size = torch.tensor([tensor.shape[0]],
                        dtype=torch.long,
                        device=tensor.device)
    sizes = [torch.zeros_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def _gather_padded(tensor: torch.Tensor, sizes: List[int]) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0 (no gradient)."""
    max_size = max(sizes)
    if tensor.shape[0] < max_size:
        padding = tensor.new_zeros((max_size - tensor.shape[0], ) +
                                   tuple(tensor.shape[1:]))
        padded = torch.cat([tensor, padding], dim=0)
    else:
        padded = tensor.contiguous()
    buffers = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(buffers, padded)
    return torch.cat([buf[:n] for buf, n in zip(buffers, sizes)], dim=0)


class _GatherWithGrad(torch.autograd.Function):
    """Autograd function behind :func:`all_gather_with_grad`."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, sizes: Tuple[int, ...]):
        """Gather the rows of every rank; remember this rank's slice."""
        rank = dist.get_rank()
        ctx.start = sum(sizes[:rank])
        ctx.stop = ctx.start + sizes[rank]
        return _gather_padded(tensor, list(sizes))

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        """Sum the gradients of all ranks; return this rank's rows."""
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start:ctx.stop], None


def all_gather_with_grad(tensor: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """Concatenate ``tensor`` from all ranks along dim 0, with gradient.

    The backward pass all-reduces (sums) the gradient of the gathered tensor
    over the ranks and returns each rank the rows it contributed, so that the
    gradient of ``sum over ranks of loss_r`` reaches every input. Without a
    process group (or with one process) the input is returned unchanged.

    Args:
        tensor: Local rows, shape (n_local, ...). The number of rows may
            differ between ranks; the other dimensions must agree.

    Returns:
        tuple: The gathered tensor of shape (sum of n_local, ...) in rank
        order, and the index of this rank's first row in it.
    """
    if not is_distributed():
        return tensor, 0
    sizes = tuple(_gather_sizes(tensor))
    offset = sum(sizes[:dist.get_rank()])
    return _GatherWithGrad.apply(tensor, sizes), offset


def all_gather_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, without gradient.

    Args:
        tensor: Local rows, shape (n_local, ...); the row count may differ
            between ranks.

    Returns:
        The gathered tensor in rank order (the input itself when not
        distributed).
    """
    if not is_distributed():
        return tensor
    with torch.no_grad():
        return _gather_padded(tensor, _gather_sizes(tensor))


def contrast_set(
        features: torch.Tensor, labels: torch.Tensor,
        gather: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The rows a contrastive loss contrasts its local anchors with.

    With ``gather`` the rows of all ranks (:func:`all_gather_with_grad`, so
    gradients reach the rank that produced a row) and their labels, else the
    local rows themselves.

    Args:
        features: Local rows (the anchors), shape (M, d).
        labels: Their labels, shape (M,).
        gather: Gather the rows of all ranks (needs a process group).

    Returns:
        tuple: The contrast rows (N, d), their labels (N,), and a boolean
        mask (M, N), True where contrast row k is anchor i itself.
    """
    if gather:
        contrast, offset = all_gather_with_grad(features)
        contrast_labels = all_gather_no_grad(labels)
    else:
        contrast, offset = features, 0
        contrast_labels = labels
    num_local = features.shape[0]
    self_index = torch.arange(num_local, device=features.device) + offset
    self_mask = torch.zeros(
        num_local, contrast.shape[0], dtype=torch.bool, device=features.device)
    self_mask[torch.arange(num_local, device=features.device),
              self_index] = True
    return contrast, contrast_labels, self_mask


def all_reduce_sum_no_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks (a detached copy; the input is kept).

    Args:
        tensor: Any tensor of the same shape on every rank.

    Returns:
        The sum over ranks (the detached input when not distributed).
    """
    result = tensor.detach().clone()
    if is_distributed():
        dist.all_reduce(result, op=dist.ReduceOp.SUM)
    return result


def global_mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Mean of per-row terms over the rows of all ranks, for DDP.

    ``total`` is the sum of this rank's terms and ``count`` the number of
    its rows that count. With one process the result is
    ``total / max(count, 1)``. With W > 1 processes its **value** is the
    global mean ``sum_r total_r / max(sum_r count_r, 1)``, the same on every
    rank (so any rank's log shows the global loss), and its **gradient** is
    that of ``W * total / max(sum_r count_r, 1)``, this rank's share: after
    DDP averages gradients over the W ranks they equal those of one process
    given all the rows, also when the ranks hold different numbers of rows.
    One all-reduce of two detached numbers; nothing is read back to the
    host. Every rank must call it (a collective).

    Args:
        total: Scalar tensor, the sum of this rank's terms (with gradient).
        count: Scalar tensor, the number of terms in ``total`` (no
            gradient).

    Returns:
        Tensor: The scalar loss.
    """
    count = count.detach().to(total.dtype)
    if not is_distributed():
        return total / count.clamp(min=1)
    world_size = dist.get_world_size()
    global_total, global_count = all_reduce_sum_no_grad(
        torch.stack([total.detach(), count]))
    global_count = global_count.clamp(min=1)
    share = total * world_size / global_count
    # share - share.detach() is exactly 0 and carries share's gradient.
    return global_total / global_count + (share - share.detach())
