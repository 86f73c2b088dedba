"""Checks the model against its training data: before training, and
before every evaluation (the metric's class counts, the test set's
classes)."""
import logging
import math
from typing import List, Optional, Sequence

from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import BaseLoop
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

from ...datasets.utils import labels_of, num_classes_of
from ...evaluation.metrics.long_tail_accuracy import LongTailAccuracy
from .class_counts_hook import ClassCountsHook

#: The heads whose ``num_classes`` must be the training set's.
HEADS = ('head', 'feat_head')


@HOOKS.register_module()
class ModelDataCheckHook(Hook):
    """Refuse a model that does not fit its training data, before training,
    and an evaluation that does not fit the model's training data.

    The one home of every check of the model against the training set, so
    that no step reads values back to check them. Before training: each
    head's ``num_classes`` against the set's number of classes, the
    training labels against the heads' range, the rows per step that a
    feature head declares it needs (``min_rows_per_step``), a classifier
    loss that corrects for the long-tailed prior (``corrects_for_prior``)
    trained on a class-balanced stream (a double correction), class priors
    given in the config (``class_counts`` of a loss or head) that differ
    from the training set's (a warning: a chosen target prior may be
    meant), and the validation checks below. Before validation and testing:
    a ``LongTailAccuracy`` whose ``class_counts`` differ from the training
    set's (read from ``ClassCountsHook``, so the set is built once), and an
    evaluation set whose classes (``metainfo['classes']``) differ from
    those the model was trained on: the training set's while training, else
    those of the loaded checkpoint (``meta.dataset_meta``, which mmengine
    saves; a checkpoint without them is accepted with an INFO line).
    ``tools/train.py`` and ``tools/test.py`` add it to every config that
    trains or evaluates (:func:`mmlt_hybrid.utils.add_data_hooks`).

    Raises:
        ValueError: At ``before_train``, ``before_val`` or ``before_test``,
            naming the setting to change.
    """

    priority = 'HIGH'  # before any hook uses the model with the data

    def __init__(self) -> None:
        self._counts_hook: Optional[ClassCountsHook] = None
        #: The loaded checkpoint's training classes (None: none recorded).
        self._checkpoint_classes: Optional[List[str]] = None
        self._checkpoint_loaded = False
        self._checked = set()  # ids of the evaluators / datasets checked

    def before_train(self, runner) -> None:
        """Run every check (see the class docstring)."""
        model = get_ori_model(runner.model)
        loader = runner.train_dataloader
        self.check_num_classes(model, loader.dataset)
        self.check_labels(model, loader.dataset)
        self.check_rows_per_step(model, loader)
        self.check_prior_on_balanced_stream(model, loader)
        if self._given_priors(model):
            self.check_prior_counts(model, self._train_counts(runner))
        if isinstance(getattr(runner, '_val_loop', None), BaseLoop):
            self._check_evaluation(runner, runner._val_loop, 'val')

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Record the classes the checkpoint was trained on."""
        meta = checkpoint.get('meta', None) or {}
        dataset_meta = meta.get('dataset_meta', None) or {}
        classes = dataset_meta.get('classes', None)
        self._checkpoint_classes = None if classes is None else [
            str(c) for c in classes
        ]
        self._checkpoint_loaded = True

    def before_val(self, runner) -> None:
        """Check the validation evaluator and set (once)."""
        self._check_evaluation(runner, runner.val_loop, 'val')

    def before_test(self, runner) -> None:
        """Check the test evaluator and set (once)."""
        self._check_evaluation(runner, runner.test_loop, 'test')

    # --- the training set's counts and classes ----------------------------

    def _train_counts(self, runner) -> Optional[List[int]]:
        """The training set's class counts (ClassCountsHook's, cached), or
        None when no training set is configured."""
        if self._counts_hook is None:
            self._counts_hook = ClassCountsHook.of(runner)
        return self._counts_hook.train_counts(runner)

    @staticmethod
    def _classes_of(dataset) -> Optional[List[str]]:
        classes = (getattr(dataset, 'metainfo', None) or {}).get('classes')
        return None if classes is None else [str(c) for c in classes]

    def _check_evaluation(self, runner, loop, split: str) -> None:
        """The checks of an evaluation loop, once per evaluator."""
        if id(loop) in self._checked:
            return
        self._checked.add(id(loop))
        self.check_metric_counts(runner, getattr(loop, 'evaluator', None),
                                 split)
        dataset = getattr(getattr(loop, 'dataloader', None), 'dataset', None)
        if dataset is not None:
            self.check_classes(runner, dataset, split)

    # --- class counts -------------------------------------------------------

    def check_metric_counts(self, runner, evaluator, split: str) -> None:
        """Refuse a ``LongTailAccuracy`` whose ``class_counts`` are not the
        training set's: its many/medium/few groups would be made of other
        classes than the model's training data gives."""
        metrics = [
            m for m in getattr(evaluator, 'metrics', None) or []
            if isinstance(m, LongTailAccuracy) and m.class_counts is not None
        ]
        if not metrics:
            return
        train = self._train_counts(runner)
        if train is None:
            print_log(
                f'ModelDataCheckHook: {split}_evaluator LongTailAccuracy '
                'class_counts are used as given: no training set is '
                'configured (train_dataloader.dataset) to compare them with.',
                logger='current',
                level=logging.INFO)
            return
        for metric in metrics:
            given = [int(c) for c in _as_list(metric.class_counts)]
            if given != train:
                raise ValueError(
                    f'ModelDataCheckHook: {split}_evaluator LongTailAccuracy '
                    f'class_counts={_show(given)} differ from the training '
                    f"set's class counts {_show(train)} (train_dataloader."
                    f'dataset){_first_difference(given, train)}; the '
                    'many/medium/few groups would not be those of the '
                    'training data. Remove class_counts from '
                    f'{split}_evaluator (ClassCountsHook fills them from the '
                    "training set) or set them to the training set's.")

    @staticmethod
    def _given_priors(model) -> list:
        """``(config key, module, counts)`` of every class prior given in
        the config (a part with ``class_counts`` and ``needs_class_counts``
        False)."""
        given = []
        for name, module in model.named_modules():
            counts = getattr(module, 'class_counts', None)
            if getattr(module, 'needs_class_counts', True) or not hasattr(
                    counts, 'numel') or not counts.numel():
                continue
            key = 'model.' + name.replace('loss_module', 'loss')
            given.append((key, module, [int(c) for c in counts.tolist()]))
        return given

    def check_prior_counts(self, model,
                           train: Optional[Sequence[int]]) -> None:
        """Warn about class priors given in the config (``class_counts`` of
        a loss or a head) that differ from the training set's counts; they
        are used as given (a chosen target prior may be meant)."""
        if train is None:
            return
        train = [int(c) for c in train]
        for key, module, given in self._given_priors(model):
            if given == train:
                continue
            print_log(
                f'ModelDataCheckHook: {key}.class_counts={_show(given)} '
                f"({type(module).__name__}) differ from the training set's "
                f'class counts {_show(train)} (train_dataloader.dataset)'
                f'{_first_difference(given, train)}; they are used as given '
                "(a chosen target prior). If the training set's were meant, "
                f'remove {key}.class_counts: ClassCountsHook fills them.',
                logger='current',
                level=logging.WARNING)

    # --- class identity -----------------------------------------------------

    def check_classes(self, runner, dataset, split: str) -> None:
        """Refuse an evaluation set whose classes differ from those the model
        was trained on (a renamed, missing or extra class folder shifts the
        labels of the classes after it)."""
        classes = self._classes_of(dataset)
        train_loop = getattr(runner, '_train_loop', None)
        if isinstance(train_loop, BaseLoop):
            reference = self._classes_of(train_loop.dataloader.dataset)
            source = 'the training set (train_dataloader.dataset)'
        elif self._checkpoint_loaded:
            reference = self._checkpoint_classes
            source = "the checkpoint's training set (meta.dataset_meta)"
            if reference is None:
                print_log(
                    'ModelDataCheckHook: the checkpoint has no dataset_meta '
                    'classes (saved by an older or another tool), so the '
                    f"{split} set's classes are not compared with those it "
                    'was trained on.',
                    logger='current',
                    level=logging.INFO)
                return
        else:
            return
        if reference is None or classes is None or classes == reference:
            return
        raise ValueError(
            f'ModelDataCheckHook: the {split} set ({split}_dataloader.dataset,'
            f' {type(dataset).__name__}) has other classes than {source}: ' +
            _class_differences(reference, classes) +
            f'. Its labels would not be those the model predicts; give '
            f'the {split} set the training classes, in the training order '
            "(e.g. the same class folder names, or metainfo=dict(classes="
            "[...]) in the dataset config).")

    @staticmethod
    def _head_classes(model) -> dict:
        """The ``num_classes`` of each head that has one, by name."""
        heads = {
            name: getattr(getattr(model, name, None), 'num_classes', None)
            for name in HEADS
        }
        return {name: n for name, n in heads.items() if n is not None}

    def check_num_classes(self, model, dataset) -> None:
        """Refuse a head whose ``num_classes`` is not the training set's (a
        head with more classes trains silently, one with fewer fails in the
        loss)."""
        heads = self._head_classes(model)
        num_classes = num_classes_of(dataset) if heads else None
        for name, head_classes in heads.items():
            if head_classes != num_classes:
                raise ValueError(
                    f'ModelDataCheckHook: model.{name}.num_classes='
                    f'{head_classes} but the training set (train_dataloader.'
                    f'dataset, {type(dataset).__name__}) has {num_classes} '
                    f'classes; set model.{name}.num_classes={num_classes}, '
                    'or train on the intended dataset.')

    def check_labels(self, model, dataset) -> None:
        """Refuse training labels outside ``[0, num_classes)`` of the
        heads."""
        heads = self._head_classes(model)
        if not heads:
            return
        num_classes = min(heads.values())
        labels = labels_of(dataset)
        bad = labels[(labels < 0) | (labels >= num_classes)]
        if len(bad):
            raise ValueError(
                f'ModelDataCheckHook: training label {bad[0]} is out of '
                f"range for the heads' num_classes={num_classes} (labels in "
                f"[0, {num_classes - 1}]); set it to the dataset's.")

    @staticmethod
    def check_rows_per_step(model, loader) -> None:
        """Refuse a feature head that would get fewer rows per step than it
        declares it needs (its loss would be 0 in every step): batch size x
        views x processes (when it gathers the rows of all processes)."""
        head = getattr(model, 'feat_head', None)
        needed = getattr(head, 'min_rows_per_step', 1)
        batch_size = getattr(loader, 'batch_size', None)
        world = get_world_size() if getattr(head, 'rows_across_ranks',
                                            False) else 1
        if needed <= 1 or not batch_size or batch_size * world >= needed:
            return
        views = getattr(model.data_preprocessor, 'num_views', None)
        if views is None:  # as many as the data gives (a one-off look)
            inputs = loader.dataset[0]['inputs']
            inputs = inputs['views'] if isinstance(inputs, dict) else inputs
            views = len(inputs) if isinstance(inputs, (list, tuple)) else 1
        rows = math.prod((batch_size, views, world))
        if rows < needed:
            raise ValueError(
                f'ModelDataCheckHook: model.feat_head ({type(head).__name__}'
                f') needs at least {needed} rows per step and gets {rows} '
                f'row(s) (train_dataloader.batch_size={batch_size} per '
                f'process x '
                f'{views} view(s) x {world} process(es)), so loss_feat would '
                'be 0 in every step; raise train_dataloader.batch_size or '
                'data_preprocessor.num_views.')

    @staticmethod
    def check_prior_on_balanced_stream(model, loader) -> None:
        """Refuse a classifier loss that corrects for the training set's
        long-tailed prior (logit adjustment, balanced softmax) where the
        classifier reads class-balanced images, whose prior is uniform: the
        paper's balanced branch (``cls_input='balanced'``) or a sampler
        whose every index is class-balanced (``class_balanced``)."""
        loss = getattr(getattr(model, 'head', None), 'loss_module', None)
        if not getattr(loss, 'corrects_for_prior', False):
            return
        sampler = getattr(loader, 'sampler', None)
        if getattr(model, 'cls_input', None) == 'balanced':
            stream = ("the class-balanced batch of the paper's hybrid "
                      "(model.cls_input='balanced')")
        elif getattr(sampler, 'class_balanced', False):
            stream = (f'class-balanced batches (train_dataloader.sampler '
                      f'{type(sampler).__name__})')
        else:
            return
        raise ValueError(
            f'ModelDataCheckHook: model.head.loss {type(loss).__name__} '
            "corrects for the training set's long-tailed prior, but the "
            f'classifier is trained on {stream}, whose prior is uniform: a '
            'double correction. Use CrossEntropyLoss on a class-balanced '
            "stream, or train the classifier on the long-tailed stream "
            "(cls_input='uniform' or 'own_view' with DefaultSampler).")


def _as_list(counts) -> list:
    return counts.tolist() if hasattr(counts, 'tolist') else list(counts)


def _show(counts: Sequence[int]) -> str:
    """Counts for a message: all of up to 20, else the first 10 and the last
    5, with the number of classes."""
    counts = list(counts)
    if len(counts) <= 20:
        return f'{counts} ({len(counts)} classes)'
    return (f'[{", ".join(map(str, counts[:10]))}, ..., '
            f'{", ".join(map(str, counts[-5:]))}] ({len(counts)} classes)')


def _first_difference(given: Sequence[int], train: Sequence[int]) -> str:
    for c, (a, b) in enumerate(zip(given, train)):
        if a != b:
            return f'; first difference at class {c}: {a} vs {b}'
    return ''


def _class_differences(reference: List[str],
                       classes: List[str],
                       listed: int = 10) -> str:
    """The differences of ``classes`` from ``reference``: missing, extra,
    and the labels whose class differs (renamed or reordered)."""
    parts = [f'{len(reference)} trained, {len(classes)} here']
    missing = [c for c in reference if c not in classes]
    extra = [c for c in classes if c not in reference]
    if missing:
        parts.append(f'missing {missing[:listed]}' + (
            f' ({len(missing)} in all)' if len(missing) > listed else ''))
    if extra:
        parts.append(f'extra {extra[:listed]}' + (
            f' ({len(extra)} in all)' if len(extra) > listed else ''))
    moved = [(label, trained, here)
             for label, (trained, here) in enumerate(zip(reference, classes))
             if trained != here]
    if moved:
        parts.append(
            'labels whose class differs (renamed or reordered, '
            'label: trained -> here): ' +
            ', '.join(f'{label}: {trained!r} -> {here!r}'
                      for label, trained, here in moved[:listed]) +
            (f' ({len(moved)} labels in all)' if len(moved) > listed else ''))
    return '; '.join(parts)


__all__ = ['ModelDataCheckHook']
