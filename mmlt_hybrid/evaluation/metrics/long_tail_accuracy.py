"""Top-k, mean per-class and many/medium/few-shot accuracy."""
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.structures import BaseDataElement
from mmpretrain.registry import METRICS

from ...validation import check_counts, check_int, check_number

#: The usual many/medium/few split of long-tail papers (Liu et al., 2019):
#: many-shot classes have more than MANY_SHOT_THR training images, few-shot
#: classes fewer than FEW_SHOT_THR.
MANY_SHOT_THR = 100
FEW_SHOT_THR = 20
_OWNER = 'LongTailAccuracy'


def _check_thresholds(owner: str, many_shot_thr, few_shot_thr) -> None:
    check_number(owner, 'many_shot_thr', many_shot_thr, low=0)
    check_number(owner, 'few_shot_thr', few_shot_thr, low=0)
    if few_shot_thr > many_shot_thr:
        raise ValueError(f'{owner}: few_shot_thr={few_shot_thr!r} is not '
                         f'allowed; it must be <= many_shot_thr='
                         f'{many_shot_thr!r}.')


def shot_groups(class_counts: Sequence[int],
                many_shot_thr: float = MANY_SHOT_THR,
                few_shot_thr: float = FEW_SHOT_THR) -> Dict[str, List[int]]:
    """Split classes into many-, medium- and few-shot by training counts.

    Args:
        class_counts (Sequence[int]): Training images of every class.
        many_shot_thr (float): Classes with more images are many-shot.
            Defaults to 100.
        few_shot_thr (float): Classes with fewer images are few-shot; those
            in ``[few_shot_thr, many_shot_thr]`` are medium-shot.
            Defaults to 20.

    Returns:
        dict: ``many``, ``medium`` and ``few``: the class indices of each
        group, ascending.

    Raises:
        ValueError: If a threshold is negative, or ``few_shot_thr >
            many_shot_thr``.
    """
    _check_thresholds('shot_groups', many_shot_thr, few_shot_thr)
    counts = np.asarray(class_counts)
    return dict(
        many=np.flatnonzero(counts > many_shot_thr).tolist(),
        medium=np.flatnonzero((counts >= few_shot_thr)
                              & (counts <= many_shot_thr)).tolist(),
        few=np.flatnonzero(counts < few_shot_thr).tolist())


@METRICS.register_module()
class LongTailAccuracy(BaseMetric):
    """Accuracy on a balanced test set, split by training-class frequency.

    Reports, in percent, with the prefix ``long_tail``:

    - ``top{k}`` for every ``k`` in ``topk``: top-k accuracy over all test
      images;
    - ``mean_class_acc``: top-1 accuracy of every class, averaged over the
      classes;
    - ``many``, ``medium``, ``few``: the same average over the many-shot
      (more than ``many_shot_thr`` training images), medium-shot
      (``few_shot_thr`` to ``many_shot_thr`` inclusive) and few-shot (fewer
      than ``few_shot_thr``) classes. A group without classes (e.g. medium
      and few on CIFAR-10-LT IF10) is left out of the results.

    Per-class averages run over the classes that have test images. Each test
    image's result is stored on its own, so under DDP (where
    ``BaseMetric.evaluate`` gathers the results of all ranks and drops the
    padding) the numbers equal those of one process.

    The metric reads ``pred_score`` (or ``pred_label`` when there is no
    score; then only ``topk=(1, )`` is possible) and ``gt_label`` from the
    data samples of mmpretrain's ``ImageClassifier`` (and of the hybrid
    classifier).

    Args:
        topk (int | Sequence[int]): The k of the top-k accuracies.
            Defaults to ``(1, )``.
        class_counts (Sequence[int], optional): Training images of every
            class, label order. None: set before evaluation by
            ``ClassCountsHook`` from the training dataset. Defaults to None.
        many_shot_thr (float): See above. Defaults to 100.
        few_shot_thr (float): See above. Defaults to 20.
        collect_device (str): Device used to gather results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the result keys. Defaults to
            ``'long_tail'``.

    Raises:
        ValueError: If a setting is outside the ranges above. At
            evaluation, if there are no ``class_counts`` or they do not
            have one entry per class; at :meth:`process`, if a test image
            has other than one label or too few scores for ``topk``.
        TypeError: If ``class_counts`` is not a sequence.
    """
    default_prefix: Optional[str] = 'long_tail'

    def __init__(self,
                 topk: Union[int, Sequence[int]] = (1, ),
                 class_counts: Optional[Sequence[int]] = None,
                 many_shot_thr: float = MANY_SHOT_THR,
                 few_shot_thr: float = FEW_SHOT_THR,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        ks = topk if isinstance(topk, (list, tuple)) and topk else [topk]
        self.topk = tuple(check_int(_OWNER, 'topk', k) for k in ks)
        _check_thresholds(_OWNER, many_shot_thr, few_shot_thr)
        self.many_shot_thr = many_shot_thr
        self.few_shot_thr = few_shot_thr
        self.class_counts = class_counts

    @property
    def class_counts(self) -> Optional[List[int]]:
        """list[int] | None: Training images of every class."""
        return self._class_counts

    @class_counts.setter
    def class_counts(self, class_counts: Optional[Sequence[int]]) -> None:
        self._class_counts = None if class_counts is None else check_counts(
            _OWNER, 'class_counts', class_counts)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store the top-k predictions and the label of every test image.

        Args:
            data_batch: The batch from the dataloader (unused).
            data_samples (Sequence[dict]): The model's outputs.
        """
        maxk = max(self.topk)
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            gt = torch.as_tensor(sample['gt_label']).flatten()
            if gt.numel() != 1:
                raise ValueError(f'{_OWNER} needs exactly one gt_label per '
                                 f'image, got {gt.tolist()}')
            result = dict(gt_label=int(gt.item()))
            if 'pred_score' in sample:
                score = torch.as_tensor(sample['pred_score']).flatten()
                if maxk > score.numel():
                    raise ValueError(f'topk={self.topk} asks for k={maxk}, '
                                     f'but there are only {score.numel()} '
                                     'classes')
                result['pred_topk'] = score.topk(maxk).indices.cpu()
                result['num_classes'] = score.numel()
            elif 'pred_label' not in sample:
                raise KeyError(f'{_OWNER} needs pred_score or pred_label in '
                               'the data samples')
            elif maxk > 1:
                raise ValueError(f'topk={self.topk} needs pred_score; the '
                                 'model gave only pred_label')
            else:
                result['pred_topk'] = torch.as_tensor(
                    sample['pred_label']).flatten()[:1].cpu()
            self.results.append(result)

    def evaluate(self, size: int) -> dict:
        """Check the counts on every rank (a refusal on the main process
        alone would leave the others waiting), then evaluate as
        ``BaseMetric`` does.

        Args:
            size (int): Length of the whole evaluation dataset.

        Returns:
            dict: The metrics, keys prefixed.
        """
        if self._class_counts is None:
            raise ValueError(
                f'{_OWNER} has no class_counts: set class_counts=[...] in '
                "the metric config, or add dict(type='ClassCountsHook') to "
                'custom_hooks to count the training set.')
        return super().evaluate(size)

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute the metrics from the gathered per-image results.

        Args:
            results (list[dict]): The stored result of every test image.

        Returns:
            dict: ``top{k}``, ``mean_class_acc`` and (non-empty groups only)
            ``many``, ``medium``, ``few``, in percent.
        """
        counts = self._class_counts
        if not results:
            raise ValueError(f'{_OWNER} got no results to evaluate')
        num_classes = len((self.dataset_meta or {}).get('classes') or ()) \
            or max(r.get('num_classes', 0) for r in results)
        if num_classes and num_classes != len(counts):
            raise ValueError(f'class_counts has {len(counts)} entries but '
                             f'the model / dataset has {num_classes} classes')
        width = min(r['pred_topk'].numel() for r in results)
        metrics = self.calculate(
            torch.stack([r['pred_topk'][:width] for r in results]),
            torch.tensor([r['gt_label'] for r in results]), counts, self.topk,
            self.many_shot_thr, self.few_shot_thr)
        del metrics['per_class']
        return metrics

    @staticmethod
    def calculate(
        pred: Union[torch.Tensor, np.ndarray, Sequence],
        target: Union[torch.Tensor, np.ndarray, Sequence],
        class_counts: Sequence[int],
        topk: Sequence[int] = (1, ),
        many_shot_thr: float = MANY_SHOT_THR,
        few_shot_thr: float = FEW_SHOT_THR,
    ) -> Dict[str, Union[float, torch.Tensor]]:
        """The metrics of predicted labels, as mmpretrain's
        ``Accuracy.calculate`` does for its own.

        Args:
            pred (torch.Tensor | np.ndarray | Sequence): The predicted labels:
                ``(N, )`` top-1 labels, or ``(N, K)`` labels ranked best first
                (e.g. ``score.topk(K).indices``), ``K >= max(topk)``.
            target (torch.Tensor | np.ndarray | Sequence): The true labels,
                ``(N, )``.
            class_counts (Sequence[int]): Training images of every class;
                its length is the number of classes.
            topk (Sequence[int]): The k of the top-k accuracies.
                Defaults to ``(1, )``.
            many_shot_thr (float): See :func:`shot_groups`. Defaults to 100.
            few_shot_thr (float): See :func:`shot_groups`. Defaults to 20.

        Returns:
            dict: In percent: ``top{k}`` for every k, ``mean_class_acc`` and
            (non-empty groups only) ``many``, ``medium``, ``few`` as floats,
            the averages running over the classes that have test images;
            ``per_class``: a float64 tensor of the top-1 accuracy of every
            class (NaN for a class without test images).

        Raises:
            ValueError: If a label of ``target`` is outside the classes.
        """
        num_classes = len(class_counts)
        target = torch.as_tensor(target).long().flatten()
        bad = target[(target < 0) | (target >= num_classes)]
        if len(bad):
            raise ValueError(f'gt_label {int(bad[0])} is outside the '
                             f'{num_classes} classes of class_counts')
        pred = torch.as_tensor(pred).reshape(len(target), -1)
        hits = pred == target[:, None]
        metrics = {
            f'top{k}': hits[:, :k].any(dim=1).double().mean().item() * 100
            for k in topk
        }
        num_per_class = torch.bincount(target, minlength=num_classes).double()
        correct_per_class = torch.bincount(
            target, weights=hits[:, 0].double(), minlength=num_classes)
        per_class = correct_per_class / num_per_class  # 0 / 0 = NaN
        has_test = num_per_class > 0
        metrics['mean_class_acc'] = per_class[has_test].mean().item() * 100
        groups = shot_groups(class_counts, many_shot_thr, few_shot_thr)
        for name, classes in groups.items():
            members = per_class[classes]
            if has_test[classes].any():
                metrics[name] = members[has_test[classes]].mean().item() * 100
        metrics['per_class'] = per_class * 100
        return metrics


__all__ = ['LongTailAccuracy', 'shot_groups', 'MANY_SHOT_THR', 'FEW_SHOT_THR']
