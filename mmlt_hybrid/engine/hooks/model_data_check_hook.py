"""Checks the model against its training data, once, before training."""
import math

from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS
from mmpretrain.utils import get_ori_model

from ...datasets.utils import labels_of, num_classes_of

#: The heads whose ``num_classes`` must be the training set's.
HEADS = ('head', 'feat_head')


@HOOKS.register_module()
class ModelDataCheckHook(Hook):
    """Refuse a model that does not fit its training data, before training.

    The one home of every check of the model against the training set, so
    that no step reads values back to check them: each head's
    ``num_classes`` against the set's number of classes, the training labels
    against the heads' range, the rows per step that a feature head
    declares it needs (``min_rows_per_step``), and a classifier loss that
    corrects for the long-tailed prior (``corrects_for_prior``) trained on a
    class-balanced stream (a double correction). ``tools/train.py`` adds it
    to every config that trains (:func:`mmlt_hybrid.utils.add_data_hooks`).

    Raises:
        ValueError: At ``before_train``, naming the setting to change.
    """

    priority = 'HIGH'  # before any hook uses the model with the data

    def before_train(self, runner) -> None:
        """Run every check (see the class docstring)."""
        model = get_ori_model(runner.model)
        loader = runner.train_dataloader
        self.check_num_classes(model, loader.dataset)
        self.check_labels(model, loader.dataset)
        self.check_rows_per_step(model, loader)
        self.check_prior_on_balanced_stream(model, loader)

    @staticmethod
    def _head_classes(model) -> dict:
        """The ``num_classes`` of each head that has one, by name."""
        heads = {name: getattr(getattr(model, name, None), 'num_classes',
                               None) for name in HEADS}
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


__all__ = ['ModelDataCheckHook']
