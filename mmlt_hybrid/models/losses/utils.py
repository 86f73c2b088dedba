"""Helpers shared by the contrastive losses and the projection heads."""
import torch


def check_features_labels(owner: str, features: torch.Tensor,
                          labels: torch.Tensor) -> None:
    """The input check of a contrastive loss: ``features`` (M, d) and
    integer ``labels`` (M,). Shapes and dtypes only, so nothing is read back
    from the device.

    Args:
        owner (str): The loss, for the message.
        features (Tensor): Embeddings, one row per view.
        labels (Tensor): The label of every row.

    Raises:
        ValueError: If a shape or the labels' dtype is wrong.
    """
    if (features.dim() != 2 or labels.shape != features.shape[:1]
            or labels.dtype.is_floating_point or labels.dtype.is_complex):
        raise ValueError(
            f'{owner}: expects features (M, d) and integer labels (M,), one '
            f'label per row of features; got features {tuple(features.shape)}'
            f' and labels {tuple(labels.shape)} of {labels.dtype}.')


def loss_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype to normalise and contrast in: the promoted dtype of
    ``tensors``, float32 in place of float16 / bfloat16 (exponentials and
    sums of many terms need more than half precision).

    Args:
        *tensors (Tensor): The operands.

    Returns:
        torch.dtype: float32 or wider.
    """
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def log_sum_exp(logits: torch.Tensor) -> torch.Tensor:
    """``log(sum(exp(logits), dim=1))`` of every row, kept as (M, 1).

    The row maximum is subtracted before the exponential (and added back
    after the log) so that large logits do not overflow; it is detached, as
    the result does not depend on it. Entries of ``-inf`` count as 0.

    Args:
        logits (Tensor): Shape (M, K), each row with a finite entry.

    Returns:
        Tensor: Shape (M, 1).
    """
    row_max = logits.max(dim=1, keepdim=True).values.detach()
    return torch.log(torch.exp(logits - row_max).sum(dim=1,
                                                     keepdim=True)) + row_max
