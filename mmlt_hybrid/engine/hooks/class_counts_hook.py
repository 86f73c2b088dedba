"""Give LongTailAccuracy and the model the per-class counts of the training
set."""
import copy
from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from mmpretrain.registry import DATASETS, HOOKS
from mmpretrain.utils import get_ori_model

from ...datasets.utils import class_counts_of
from ...evaluation.metrics.long_tail_accuracy import LongTailAccuracy


@HOOKS.register_module()
class ClassCountsHook(Hook):
    """Fill the class counts of metrics and model parts that have none.

    Every ``LongTailAccuracy`` without ``class_counts`` gets the training
    set's per-class counts (from the built training dataloader, or, when
    only testing, from a dataset built from ``cfg.train_dataloader``); every
    model part with ``needs_class_counts`` gets them through
    ``set_class_counts`` at ``before_run`` (before ``EMAHook`` copies the
    model) and again at ``before_train`` (after a checkpoint was loaded).
    Counts given in a config are kept. The protocol is in docs/design.md.

    Raises:
        ValueError: If a metric needs counts and no training dataset is
            configured.
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

    def train_counts(self, runner) -> Optional[List[int]]:
        """The training set's class counts, counted once per run: from the
        built training dataloader, else from a dataset built from
        ``cfg.train_dataloader`` (when only testing); None when no training
        dataset is configured. ``ModelDataCheckHook`` reads them here, so
        the training set is built once."""
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
                return None
            dataset = DATASETS.build(copy.deepcopy(dataset_cfg))
        self._counts = class_counts_of(dataset)
        return self._counts

    def _train_counts(self, runner) -> List[int]:
        counts = self.train_counts(runner)
        if counts is None:
            raise ValueError(
                'ClassCountsHook: no training dataset is configured '
                '(train_dataloader.dataset) to count; set class_counts='
                '[...] in the LongTailAccuracy config.')
        return counts

    @classmethod
    def of(cls, runner) -> 'ClassCountsHook':
        """The runner's ``ClassCountsHook`` (whose counts are cached), or a
        new one when none is registered."""
        hooks = getattr(runner, 'hooks', None) or []
        return next((h for h in hooks if isinstance(h, cls)), None) or cls()

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
        """Fill the counts of the model's parts again, after a checkpoint
        was loaded."""
        self._fill_model(runner)

    def before_val(self, runner) -> None:
        """Fill the counts of the validation evaluator."""
        self._fill(runner, [runner.val_evaluator])

    def before_test(self, runner) -> None:
        """Fill the counts of the test evaluator."""
        self._fill(runner, [runner.test_evaluator])


__all__ = ['ClassCountsHook']
