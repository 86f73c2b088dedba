"""Top-k, mean per-class and many/medium/few-shot accuracy."""
from numbers import Number
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.structures import BaseDataElement

from mmpretrain.registry import METRICS


#: The usual many/medium/few split of long-tail papers (Liu et al., 2019):
#: many-shot classes have more than MANY_SHOT_THR training images, few-shot
#: classes fewer than FEW_SHOT_THR.
MANY_SHOT_THR = 100
FEW_SHOT_THR = 20


def _check_thresholds(many_shot_thr, few_shot_thr) -> None:
    for key, value in (('many_shot_thr', many_shot_thr), ('few_shot_thr',
                                                          few_shot_thr)):
        if isinstance(value, bool) or not isinstance(value, Number) \
                or not np.isfinite(value) or value < 0:
            raise ValueError(
                f'{key} must be a non-negative number, got {value!r}')
    if few_shot_thr > many_shot_thr:
        raise ValueError(
            f'few_shot_thr ({few_shot_thr!r}) must not exceed many_shot_thr '
            f'({many_shot_thr!r}): many-shot classes have more than '
            'many_shot_thr training images, few-shot classes fewer than '
            'few_shot_thr')


def _check_class_counts(class_counts) -> Optional[List[int]]:
    if class_counts is None:
        return None
    if isinstance(class_counts, (str, bytes)) or not isinstance(
            class_counts, (Sequence, np.ndarray, torch.Tensor)):
        raise TypeError('class_counts must be a sequence of per-class '
                        f'training image counts, got {class_counts!r}')
    counts = []
    for c, count in enumerate(list(class_counts)):
        if isinstance(count, torch.Tensor):
            count = count.item()
        if isinstance(count, bool) or not isinstance(
                count, (int, np.integer)) or count < 0:
            raise ValueError(
                'class_counts must hold non-negative ints, got '
                f'class_counts[{c}] = {count!r}')
        counts.append(int(count))
    if not counts:
        raise ValueError('class_counts must not be empty')
    return counts


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
    """
    _check_thresholds(many_shot_thr, few_shot_thr)
    counts = np.asarray(_check_class_counts(class_counts))
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
        ks = topk
        if isinstance(ks, (int, np.integer)) and not isinstance(ks, bool):
            ks = (ks, )
        if not isinstance(ks, (list, tuple)) or len(ks) == 0 or any(
                isinstance(k, bool) or not isinstance(k, (int, np.integer))
                or k < 1 for k in ks):
            raise ValueError(
                f'topk must be a positive int or a non-empty sequence of '
                f'positive ints, got {topk!r}')
        self.topk: Tuple[int, ...] = tuple(int(k) for k in ks)
        _check_thresholds(many_shot_thr, few_shot_thr)
        self.many_shot_thr = many_shot_thr
        self.few_shot_thr = few_shot_thr
        self.class_counts = class_counts

    @property
    def class_counts(self) -> Optional[List[int]]:
        """list[int] | None: Training images of every class."""
        return self._class_counts

    @class_counts.setter
    def class_counts(self, class_counts: Optional[Sequence[int]]) -> None:
        self._class_counts = _check_class_counts(class_counts)

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
                raise ValueError('LongTailAccuracy needs exactly one '
                                 f'gt_label per image, got {gt.tolist()}')
            result = dict(gt_label=int(gt.item()))
            if 'pred_score' in sample:
                score = torch.as_tensor(sample['pred_score']).flatten()
                if maxk > score.numel():
                    raise ValueError(
                        f'topk={self.topk} asks for k={maxk}, but there are '
                        f'only {score.numel()} classes')
                result['pred_topk'] = score.topk(maxk).indices.cpu()
                result['num_classes'] = score.numel()
            elif 'pred_label' in sample:
                if maxk > 1:
                    raise ValueError(
                        f'topk={self.topk} needs pred_score; the model only '
                        'gave pred_label')
                result['pred_topk'] = torch.as_tensor(
                    sample['pred_label']).flatten()[:1].cpu()
            else:
                raise KeyError('LongTailAccuracy needs pred_score or '
                               'pred_label in the data samples')
            self.results.append(result)

    def _require_counts(self) -> List[int]:
        if self._class_counts is None:
            raise ValueError(
                'LongTailAccuracy has no class_counts: set '
                'class_counts=[...] (training images per class) in the '
                "metric config, or add dict(type='ClassCountsHook') to "
                'custom_hooks to take them from the training dataset')
        return self._class_counts

    def evaluate(self, size: int) -> dict:
        """Check the counts on every rank, then evaluate as BaseMetric does.

        Args:
            size (int): Length of the whole evaluation dataset.

        Returns:
            dict: The metrics, keys prefixed.
        """
        self._require_counts()
        return super().evaluate(size)

    def _num_classes(self, results: List[dict]) -> Optional[int]:
        classes = (self.dataset_meta or {}).get('classes', None)
        if classes:
            return len(classes)
        sizes = {r['num_classes'] for r in results if 'num_classes' in r}
        if len(sizes) > 1:
            raise ValueError(
                f'pred_score sizes differ between images: {sorted(sizes)}')
        return sizes.pop() if sizes else None

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        """Compute the metrics from the gathered per-image results.

        Args:
            results (list[dict]): The stored result of every test image.

        Returns:
            dict: ``top{k}``, ``mean_class_acc`` and (non-empty groups only)
            ``many``, ``medium``, ``few``, in percent.
        """
        counts = self._require_counts()
        if not results:
            raise ValueError('LongTailAccuracy got no results to evaluate')
        num_classes = self._num_classes(results)
        if num_classes is not None and num_classes != len(counts):
            raise ValueError(
                f'class_counts has {len(counts)} entries but the model / '
                f'dataset has {num_classes} classes')
        gt = torch.tensor([r['gt_label'] for r in results])
        bad = gt[(gt < 0) | (gt >= len(counts))]
        if len(bad):
            raise ValueError(
                f'gt_label {int(bad[0])} is outside the {len(counts)} classes '
                'of class_counts')
        width = min(r['pred_topk'].numel() for r in results)
        preds = torch.stack([r['pred_topk'][:width] for r in results])
        hits = preds == gt[:, None]

        metrics = {}
        for k in self.topk:
            correct = hits[:, :k].any(dim=1).double()
            metrics[f'top{k}'] = correct.mean().item() * 100

        top1 = hits[:, 0].double()
        num_per_class = torch.bincount(gt, minlength=len(counts)).double()
        correct_per_class = torch.bincount(
            gt, weights=top1, minlength=len(counts))
        has_test = num_per_class > 0
        per_class = torch.zeros(len(counts), dtype=torch.float64)
        per_class[has_test] = correct_per_class[has_test] / num_per_class[
            has_test]
        metrics['mean_class_acc'] = per_class[has_test].mean().item() * 100

        groups = shot_groups(counts, self.many_shot_thr, self.few_shot_thr)
        for name, classes in groups.items():
            members = torch.zeros(len(counts), dtype=torch.bool)
            members[classes] = True
            members &= has_test
            if members.any():
                metrics[name] = per_class[members].mean().item() * 100
        return metrics


__all__ = ['LongTailAccuracy', 'shot_groups', 'MANY_SHOT_THR', 'FEW_SHOT_THR']
