"""Prototypical supervised contrastive loss (Wang et al., CVPR 2021)."""
import math
from typing import Optional

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from ..utils.step_rng import step_generator
from .gather import global_mean
from .supcon_loss import check_features_labels, check_temperature

DENOMINATORS = ('negatives', 'all')


def check_num_negatives(num_negatives, num_classes: Optional[int],
                        owner: str) -> Optional[int]:
    """Validate the number of sampled negative prototypes.

    Args:
        num_negatives: None (use all negatives) or an int K >= 1.
        num_classes: The number of classes C if known; then K <= C - 1 is
            required.
        owner: Class name, for the error message.

    Returns:
        The value.
    """
    if num_negatives is None:
        return None
    if isinstance(num_negatives, bool) or not isinstance(num_negatives, int):
        raise TypeError(f'{owner}: num_negatives={num_negatives!r} must be '
                        'None (all negatives) or a positive integer.')
    if num_negatives < 1:
        raise ValueError(f'{owner}: num_negatives={num_negatives} must be '
                         '>= 1 (or None for all negatives).')
    if num_classes is not None and num_negatives > num_classes - 1:
        raise ValueError(
            f'{owner}: num_negatives={num_negatives} is larger than the '
            f'{num_classes - 1} negative prototypes available with '
            f'num_classes={num_classes}; it must be <= num_classes - 1.')
    return num_negatives


@MODELS.register_module()
class PSCLoss(nn.Module):
    """Prototypical supervised contrastive loss.

    Every row ``z_i`` (every view) is pulled towards the prototype of its
    class and pushed from the other prototypes:

    .. math::

        l_i = -\\log \\frac{\\exp(z_i \\cdot p_{y_i} / \\tau)}
                          {\\sum_{j \\ne y_i} \\exp(z_i \\cdot p_j / \\tau)}

    and the loss is the mean of ``l_i`` over the rows. With
    ``denominator='negatives'`` (the published form, default) the sum runs
    over the C - 1 negative prototypes; with ``denominator='all'`` it also
    holds the positive, i.e. the usual softmax cross-entropy over
    ``z_i . p_j / tau``. The log-sum-exp subtracts the row maximum. Memory is
    O(M * C): there is no pairwise matrix between rows.

    With ``num_negatives=K`` each row uses K negatives drawn uniformly without
    replacement from its C - 1 negatives (fresh draws every training step,
    repeated exactly by a resumed run; see :meth:`sample_negatives`), for
    very many classes. Labels must lie in ``[0, C)``; they are not read back
    to the host to check that.

    Multi-process training: under a process group of W > 1 processes the
    mean runs over the rows of all ranks (:func:`global_mean`, one
    all-reduce of two numbers, so every rank must call the loss). Every rank
    returns the global loss as the value, and a gradient that, after DDP
    averages gradients over the ranks, equals that of one process given all
    the rows, also when the ranks hold different numbers of rows (or none).

    Args:
        temperature: tau, a finite number > 0. Defaults to 0.1 (the paper
            uses 0.1 on CIFAR-100 and 1.0 on CIFAR-10).
        denominator: ``'negatives'`` or ``'all'``. Defaults to
            ``'negatives'``.
        num_negatives: K sampled negatives per row, or None for all of them.
            Defaults to None.
        loss_weight: Factor on the loss. Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.1,
                 denominator: str = 'negatives',
                 num_negatives: Optional[int] = None,
                 loss_weight: float = 1.0):
        super().__init__()
        self.temperature = check_temperature('temperature', temperature,
                                             'PSCLoss')
        if denominator not in DENOMINATORS:
            raise ValueError(
                f'PSCLoss: denominator={denominator!r} is not allowed; '
                f'choose from {DENOMINATORS}.')
        self.denominator = denominator
        self.num_negatives = check_num_negatives(num_negatives, None,
                                                 'PSCLoss')
        if isinstance(loss_weight, bool) or not isinstance(
                loss_weight, (int, float)) or not math.isfinite(loss_weight):
            raise ValueError(
                f'PSCLoss: loss_weight={loss_weight!r} must be a finite '
                'number.')
        self.loss_weight = float(loss_weight)

    @staticmethod
    def sample_negatives(labels: torch.Tensor, num_classes: int,
                         num_negatives: int) -> torch.Tensor:
        """Draw ``num_negatives`` distinct negative classes for every row.

        Inside a training loop the draws come from the generator of the
        step (:func:`step_generator`, seeded by seed, epoch, iteration and
        rank), so a resumed run draws what the uninterrupted one drew;
        elsewhere from torch's global generator.

        Args:
            labels: Labels, shape (M,).
            num_classes: C.
            num_negatives: K <= C - 1.

        Returns:
            Tensor: Class indices, shape (M, K); no row holds its own label
            and no index repeats within a row.
        """
        generator = step_generator(labels.device, 'psc_negatives')
        keys = torch.rand(
            labels.shape[0],
            num_classes,
            device=labels.device,
            generator=generator)
        # The positive gets a key above every random key, so it sorts last.
        keys.scatter_(1, labels[:, None], 2.0)
        return keys.argsort(dim=1)[:, :num_negatives]

    def forward(self, features: torch.Tensor, labels: torch.Tensor,
                prototypes: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            features: L2-normalised embeddings, shape (M, d).
            labels: Class of every row, shape (M,), in ``[0, C)``.
            prototypes: L2-normalised class prototypes, shape (C, d).

        Returns:
            Tensor: The scalar loss.
        """
        check_features_labels(features, labels, 'PSCLoss')
        if (not isinstance(prototypes, torch.Tensor) or prototypes.dim() != 2
                or prototypes.shape[1] != features.shape[1]):
            shape = tuple(prototypes.shape) if isinstance(
                prototypes, torch.Tensor) else type(prototypes).__name__
            raise ValueError(
                'PSCLoss: prototypes must be a 2-d tensor (C, d) with d = '
                f'{features.shape[1]} (the feature width), got {shape}.')
        num_classes = prototypes.shape[0]
        if num_classes < 2:
            raise ValueError(
                f'PSCLoss: needs at least 2 prototypes, got {num_classes}.')
        check_num_negatives(self.num_negatives, num_classes, 'PSCLoss')
        labels = labels.to(features.device).long()
        dtype = torch.promote_types(features.dtype, prototypes.dtype)
        if dtype in (torch.float16, torch.bfloat16):
            dtype = torch.float32
        with torch.autocast(device_type=features.device.type, enabled=False):
            logits = features.to(dtype) @ prototypes.to(dtype).t() / \
                self.temperature
            positive = logits.gather(1, labels[:, None])
            if self.num_negatives is not None:
                negatives = self.sample_negatives(labels, num_classes,
                                                  self.num_negatives)
                negative_logits = logits.gather(1, negatives)
            else:
                negative_logits = logits.masked_fill(
                    torch.zeros_like(logits, dtype=torch.bool).scatter_(
                        1, labels[:, None], True), float('-inf'))
            if self.denominator == 'all':
                negative_logits = torch.cat([negative_logits, positive],
                                            dim=1)
            row_max = negative_logits.max(dim=1, keepdim=True).values.detach()
            log_denominator = torch.log(
                torch.exp(negative_logits - row_max).sum(
                    dim=1, keepdim=True)) + row_max
            # With no rows (possible on one rank) the sum is a zero joined
            # to the graph.
            loss = global_mean((log_denominator - positive).sum(),
                               logits.new_full((), labels.shape[0]))
        return self.loss_weight * loss
