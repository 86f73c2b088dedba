"""Give LongTailAccuracy and the model the per-class counts of the training
set."""
import copy
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.runner import BaseLoop

from mmpretrain.registry import DATASETS, HOOKS
from mmpretrain.utils import get_ori_model
from ...datasets.utils import class_counts_of, num_classes_of
from ...evaluation.metrics.long_tail_accuracy import LongTailAccuracy


@HOOKS.register_module()
class ClassCountsHook(Hook):
    """Fill the class counts of metrics and model parts that have none.

    Before running, validating and testing, every ``LongTailAccuracy`` of
    the validation and test evaluators whose ``class_counts`` is None gets
    the per-class image counts of the training dataset: the runner's
    training dataloader's dataset when it is built (training), else a dataset
    built from ``cfg.train_dataloader.dataset`` (``tools/test.py``; it is
    only read for its counts). Counts given in the metric config are kept.

    The model's parts get the training set's counts by a protocol: every
    submodule of the model (``model.modules()``) whose attribute
    ``needs_class_counts`` is true has its ``set_class_counts(counts)``
    called with the counts (``list[int]``, label order) before training, at
    ``before_run`` (so that ``EMAHook``'s copy of the model holds them; this
    hook's priority is above ``EMAHook``'s) and again at ``before_train``
    (after a checkpoint was loaded). A part whose config gives the counts
    sets ``needs_class_counts = False`` and keeps them. ``LogitAdjustedLoss``,
    ``BalancedSoftmaxLoss`` and ``LogitAdjustedLinearClsHead`` follow it
    (:class:`~mmlt_hybrid.models.losses.ClassPriorMixin`); they save the
    counts in a buffer, so testing takes them from the checkpoint and this
    hook does not fill the model when only testing.

    Before training it also refuses a classification head (``model.head``,
    and ``model.feat_head`` when it has classes) whose ``num_classes`` is not
    the training set's number of classes
    (:func:`~mmlt_hybrid.datasets.utils.num_classes_of`):
    a head with more classes trains silently, one with fewer fails in the
    loss. ``tools/train.py`` adds this hook to every config that trains
    (:func:`mmlt_hybrid.utils.add_class_counts_hook`), so the check applies
    to plain mmpretrain configs too.

    Raises:
        ValueError: If a metric needs counts and no training dataset is
            configured; if a head's ``num_classes`` differs from the
            training set's number of classes.
    """

    priority = 'ABOVE_NORMAL'  # before EMAHook copies the model

    def __init__(self) -> None:
        self._counts: Optional[List[int]] = None

    @staticmethod
    def _metrics_without_counts(evaluator) -> List[LongTailAccuracy]:
        metrics = getattr(evaluator, 'metrics', None) or []
        return [
            m for m in metrics
            if isinstance(m, LongTailAccuracy) and m.class_counts is None
        ]

    def _train_counts(self, runner) -> List[int]:
        if self._counts is not None:
            return self._counts
        train_loop = getattr(runner, '_train_loop', None)
        if isinstance(train_loop, BaseLoop):
            dataset = train_loop.dataloader.dataset
        else:
            cfg = getattr(runner, 'cfg', None) or {}
            loader_cfg = cfg.get('train_dataloader', None)
            dataset_cfg = (loader_cfg or {}).get('dataset', None)
            if dataset_cfg is None:
                raise ValueError(
                    'ClassCountsHook: no training dataset is configured '
                    '(train_dataloader.dataset) to count; set class_counts='
                    '[...] in the LongTailAccuracy config.')
            dataset = DATASETS.build(copy.deepcopy(dataset_cfg))
        self._counts = class_counts_of(dataset)
        return self._counts

    def _fill(self, runner, evaluators) -> None:
        for evaluator in evaluators:
            metrics = self._metrics_without_counts(evaluator)
            if metrics:
                counts = self._train_counts(runner)
                for metric in metrics:
                    metric.class_counts = counts

    def _fill_model(self, runner) -> None:
        for module in get_ori_model(runner.model).modules():
            if getattr(module, 'needs_class_counts', False):
                module.set_class_counts(self._train_counts(runner))

    def before_run(self, runner) -> None:
        """Fill the counts of the evaluators of the loops already built,
        and of the model's parts when training."""
        if isinstance(getattr(runner, '_train_loop', None), BaseLoop):
            self._fill_model(runner)
        evaluators = []
        for name in ('_val_loop', '_test_loop'):
            loop = getattr(runner, name, None)
            if isinstance(loop, BaseLoop):
                evaluators.append(getattr(loop, 'evaluator', None))
        self._fill(runner, evaluators)

    def before_train(self, runner) -> None:
        """Refuse heads whose ``num_classes`` is not the training set's,
        then fill the counts of the model's parts."""
        model = get_ori_model(runner.model)
        dataset = runner.train_dataloader.dataset
        num_classes = None  # counted only when a head has classes
        for name in ('head', 'feat_head'):
            head_classes = getattr(
                getattr(model, name, None), 'num_classes', None)
            if head_classes is None:
                continue
            if num_classes is None:
                num_classes = num_classes_of(dataset)
            if head_classes != num_classes:
                raise ValueError(
                    f'ClassCountsHook: model.{name}.num_classes={head_classes}'
                    ' but the training set (train_dataloader.dataset, '
                    f'{type(dataset).__name__}) has {num_classes} classes; set'
                    f' model.{name}.num_classes={num_classes}, or train on '
                    'the intended dataset.')
        self._fill_model(runner)

    def before_val(self, runner) -> None:
        """Fill the counts of the validation evaluator."""
        self._fill(runner, [runner.val_evaluator])

    def before_test(self, runner) -> None:
        """Fill the counts of the test evaluator."""
        self._fill(runner, [runner.test_evaluator])


__all__ = ['ClassCountsHook']
