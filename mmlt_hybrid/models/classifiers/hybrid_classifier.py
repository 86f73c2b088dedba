"""The contrastive-learning hybrid network (Wang et al., CVPR 2021)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ...validation import check_choice


def _split_rows(feats: Union[torch.Tensor, Sequence[torch.Tensor]],
                index: int) -> Tuple:
    """Split a tensor, or every tensor of a tuple, at row ``index``."""
    if isinstance(feats, torch.Tensor):
        return feats[:index], feats[index:]
    return (tuple(f[:index] for f in feats), tuple(f[index:] for f in feats))


#: What the classifier branch may read (see ``cls_input``).
CLS_INPUTS = ('balanced', 'uniform', 'own_view')
#: The key of the classifier's images in a dict batch, by ``cls_input``.
_CLS_KEY = dict(balanced='balanced', own_view='cls')


@MODELS.register_module()
class HybridClassifier(ImageClassifier):
    """Shared backbone with a feature-learning and a classifier branch.

    The training loss is ``alpha * L_feat + (1 - alpha) * L_cls`` over one
    backbone + neck pass of every image of the step: ``feat_head`` reads the
    V views of the N uniform images, ``head`` the images ``cls_input``
    names; both weighted terms are returned (``loss_feat``, ``loss_cls``).
    ``alpha`` is set by ``HybridTransitionHook``. Prediction is
    :class:`ImageClassifier`'s, from ``head``, so a stock mmpretrain model
    config becomes hybrid with ``type='HybridClassifier'`` and a
    ``feat_head``. The batch layouts are in docs/design.md.

    Args:
        backbone: The backbone config, e.g. ``dict(type='CifarResNet')``.
        neck: The neck config, e.g. ``dict(type='GlobalAveragePooling')``.
        head: The classification head config, e.g.
            ``dict(type='LinearClsHead', num_classes=10, in_channels=64)``;
            required (keyword).
        feat_head: The feature head config (or module), e.g.
            ``dict(type='SupConHead')``; required (keyword).
        pretrained: Checkpoint to initialise from. Defaults to None.
        train_cfg: Batch augmentations handed to the data preprocessor as
            ``batch_augments`` (as in ImageClassifier). Defaults to None.
        cls_input: Which batch the classifier branch reads, one of
            :data:`CLS_INPUTS`. ``'balanced'`` (the paper): the
            class-balanced batch of :class:`ClassBalancedPairSampler`; a
            batch without it is refused. ``'uniform'``: all V views of the
            uniform images, from single images (``DefaultSampler``) that the
            preprocessor views ``num_views`` times, or from a per-sample
            ``MultiView`` pipeline; a hybrid (pair) batch is refused.
            ``'own_view'``: one more view of each uniform image, made by the
            preprocessor with its ``balanced_transforms`` (the classifier's),
            besides the V views the feature head reads: (V + 1) N images a
            step, no second batch. Defaults to ``'balanced'``.
        data_preprocessor: Config or module; the type defaults to
            ``'HybridDataPreprocessor'``. With ``cls_input='uniform'`` or
            ``'own_view'`` it must have ``num_views`` (and, for
            ``'uniform'``, no ``batch_augments``); the model sets its
            ``view_single_images`` (and ``classifier_view``).
        init_cfg: Initialisation config. Defaults to None.

    Raises:
        TypeError: If ``head`` or ``feat_head`` is missing.
        ValueError: If ``cls_input`` is unknown, the heads' ``num_classes``
            differ, or ``cls_input='uniform'`` comes with a preprocessor
            that cannot view single images (no ``num_views``, or
            ``batch_augments``).
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 *,
                 head: dict,
                 feat_head: Union[dict, nn.Module],
                 pretrained: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 cls_input: str = 'balanced',
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None):
        owner = 'HybridClassifier'
        self.cls_input = check_choice(owner, 'cls_input', cls_input,
                                      CLS_INPUTS)
        data_preprocessor = data_preprocessor or {}
        if isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor)
            data_preprocessor.setdefault('type', 'HybridDataPreprocessor')
            if train_cfg is not None:
                data_preprocessor.setdefault('batch_augments', train_cfg)
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            pretrained=pretrained,
            train_cfg=train_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if cls_input != 'balanced':
            self._view_single_images(owner)
        self.feat_head = feat_head if isinstance(
            feat_head, nn.Module) else MODELS.build(feat_head)
        head_classes = getattr(self.head, 'num_classes', None)
        feat_classes = getattr(self.feat_head, 'num_classes', None)
        if len({head_classes, feat_classes} - {None}) > 1:
            raise ValueError(
                f'{owner}: feat_head.num_classes={feat_classes} differs from '
                f"head.num_classes={head_classes}; set both to the dataset's.")

        #: Weight of the feature loss, set by HybridTransitionHook.
        self.alpha: Optional[float] = None

    def _view_single_images(self, owner: str) -> None:
        """Have the preprocessor view every single training image
        ``num_views`` times, the batch ``cls_input='uniform'`` reads."""
        pre = self.data_preprocessor
        views = getattr(pre, 'num_views', None)
        mixing = getattr(pre, 'batch_augments', None)
        own = self.cls_input == 'own_view'
        if not hasattr(pre, 'view_single_images') or views is None or (
                mixing and not own):
            raise ValueError(
                f'{owner}(cls_input={self.cls_input!r}): the classifier reads '
                'views of single images, which data_preprocessor must make: '
                'a HybridDataPreprocessor with num_views' +
                ('' if own else ' and without batch_augments (Mixup, '
                 'CutMix would mix the views the feature head reads)') +
                f'; got {type(pre).__name__} with num_views={views!r} and '
                f'batch_augments={type(mixing).__name__ if mixing else None}.')
        pre.view_single_images = True
        pre.classifier_view = own

    def _branches(self, inputs, data_samples) -> Tuple:
        """The feature head's views and samples, and the classifier's
        images and samples (None, None for ``'uniform'``), of a batch in
        the layout of ``cls_input``; any other layout is refused."""
        key = _CLS_KEY.get(self.cls_input)
        found = None
        if isinstance(inputs, dict):
            found = (
                'pairs' if 'balanced' in inputs else 'a classifier '
                'view' if 'cls' in inputs else f'the keys {sorted(inputs)}')
        if (key is None) != (found is None) or (key and key not in inputs):
            lacks = dict(
                balanced='no class-balanced part',
                own_view='no classifier view (cls)')
            raise ValueError(
                f'HybridClassifier(cls_input={self.cls_input!r}): the batch '
                f'has {found or lacks[self.cls_input]}; \'uniform\' takes '
                "views of single images (DefaultSampler), 'balanced' pairs "
                "of ClassBalancedPairSampler + HybridPairDataset, 'own_view' "
                'views of single images and a classifier view of each, made '
                'by the data preprocessor.')
        if key is None:
            return list(inputs), list(data_samples), None, None
        if key == 'balanced':
            return (list(inputs['views']), data_samples['uniform'],
                    inputs['balanced'], data_samples['balanced'])
        return (list(inputs['views']), list(data_samples), inputs['cls'],
                list(data_samples))

    def loss(self, inputs: Union[dict, List[torch.Tensor]],
             data_samples: Union[dict, List[DataSample]]) -> dict:
        """Compute the weighted feature and classifier losses.

        Args:
            inputs (dict | list[Tensor]): ``'balanced'``: ``dict(views=[V x
                (N, C, H, W)], balanced=(N, C, H, W))``; ``'own_view'``:
                ``dict(views=[V x (N, C, H, W)], cls=(N, C, H, W))``;
                ``'uniform'``: ``[V x (N, C, H, W)]`` (docs/design.md).
            data_samples (dict | list[DataSample]): ``'balanced'``:
                ``dict(uniform=[N], balanced=[N])``; otherwise the N data
                samples.

        Returns:
            dict[str, Tensor]: ``loss_feat`` (alpha * L_feat) and
            ``loss_cls`` ((1 - alpha) * L_cls); other outputs of the heads
            get the prefix ``feat_`` or ``cls_``.

        Raises:
            RuntimeError: If ``alpha`` has not been set (no
                HybridTransitionHook).
            ValueError: If the batch is not the layout of ``cls_input``.
        """
        if self.alpha is None:
            raise RuntimeError('HybridClassifier.alpha is not set; add '
                               "dict(type='HybridTransitionHook') to "
                               'custom_hooks.')
        views, uniform, cls_images, cls_samples = self._branches(
            inputs, data_samples)
        if cls_images is None:  # 'uniform': both heads read the views
            uniform_feats = cls_feats = self.extract_feat(torch.cat(views))
            cls_samples = uniform * len(views)
        else:
            feats = self.extract_feat(torch.cat(views + [cls_images]))
            uniform_feats, cls_feats = _split_rows(
                feats, sum(view.shape[0] for view in views))
        # Every view of an image is one more row with the image's label.
        labels = torch.cat([sample.gt_label.reshape(-1)
                            for sample in uniform]).repeat(len(views))
        if getattr(self.feat_head, 'needs_classifier_weight', False):
            feat_losses = self.feat_head.loss(uniform_feats, labels,
                                              self.head.fc.weight)
        else:
            feat_losses = self.feat_head.loss(uniform_feats, labels)
        cls_losses = self.head.loss(cls_feats, cls_samples)

        alpha = float(self.alpha)
        losses = dict()
        for prefix, weight, head_losses in (('feat', alpha, feat_losses),
                                            ('cls', 1.0 - alpha, cls_losses)):
            for key, value in head_losses.items():
                if key == 'loss':
                    losses[f'loss_{prefix}'] = weight * value
                elif 'loss' in key:
                    losses[f'{prefix}_{key}'] = weight * value
                else:
                    losses[f'{prefix}_{key}'] = value
        return losses
