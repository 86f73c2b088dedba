"""The contrastive-learning hybrid network (Wang et al., CVPR 2021)."""
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
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
CLS_INPUTS = ('balanced', 'uniform')


@MODELS.register_module()
class HybridClassifier(ImageClassifier):
    """Shared backbone with a feature-learning and a classifier branch.

    Training loss (one backbone + neck pass over every image of the step):

    .. math::

        L = \\alpha \\, L_{feat}(B_{uniform}) +
            (1 - \\alpha) \\, L_{cls}(B_{cls})

    - ``feat_head`` (e.g. ``SupConHead`` or ``PSCHead``) sees the V views of
      the N images of the instance-balanced (uniform) batch;
    - ``head`` (any mmpretrain classification head, e.g. ``LinearClsHead``
      with cross-entropy) sees ``B_cls``, chosen by ``cls_input``:
      ``'balanced'`` (the paper): the N images of a second, class-balanced
      batch, (V + 1) N images a step; ``'uniform'`` (beyond the paper, e.g.
      with ``LogitAdjustedLoss``): the same V views of the N uniform images
      as the feature head, every view a row with its image's label, so V N
      images a step (2N for V = 2) and no second batch.

    ``alpha`` is set from outside by ``HybridTransitionHook`` before every
    epoch (or iteration); it is None until then and :meth:`loss` refuses to
    run without it. The returned dict holds both weighted terms,
    ``loss_feat = alpha * L_feat`` and ``loss_cls = (1 - alpha) * L_cls``,
    so both are logged. The features are not detached for the classifier.

    At test time only the classifier branch is used: :meth:`predict`,
    :meth:`extract_feat` and ``test_step`` are those of
    :class:`mmpretrain.models.ImageClassifier`; the classifier head keeps
    the name ``head``, so a stock mmpretrain model config becomes hybrid by
    setting ``type='HybridClassifier'`` and adding ``feat_head``.

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
            Defaults to ``'balanced'``.
        data_preprocessor: Config or module; the type defaults to
            ``'HybridDataPreprocessor'``, which makes the batch below. With
            ``cls_input='uniform'`` a config gets
            ``view_single_images=True`` by default, and a preprocessor
            without it is refused.
        init_cfg: Initialisation config. Defaults to None.

    The training batch is explicit. ``'balanced'`` (what
    ``HybridDataPreprocessor`` makes of a ``HybridPairDataset`` batch):
    ``inputs = dict(views=[V tensors (N, C, H, W)], balanced=tensor (N, C,
    H, W))`` and ``data_samples = dict(uniform=[N], balanced=[N])``.
    ``'uniform'`` (mmpretrain's multi-view layout): ``inputs = [V tensors
    (N, C, H, W)]`` and ``data_samples = [N]``. :meth:`loss` concatenates
    the images once for one backbone + neck pass and splits the features
    once (``'balanced'``; ``'uniform'`` needs no split); nothing is derived
    from row counts.

    Raises:
        TypeError: If ``head`` or ``feat_head`` is missing.
        ValueError: If ``cls_input`` is unknown, the heads' ``num_classes``
            differ, or ``cls_input='uniform'`` comes with a preprocessor
            that does not view single images.
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
            if cls_input == 'uniform':
                data_preprocessor.setdefault('view_single_images', True)
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
        viewing = getattr(self.data_preprocessor, 'view_single_images', None)
        if cls_input == 'uniform' and viewing is not True:
            raise ValueError(
                f"{owner}(cls_input='uniform'): data_preprocessor has "
                f'view_single_images={viewing!r}; set view_single_images=True'
                ' and num_views (HybridDataPreprocessor).')
        self.feat_head = feat_head if isinstance(
            feat_head, nn.Module) else MODELS.build(feat_head)
        head_classes = getattr(self.head, 'num_classes', None)
        feat_classes = getattr(self.feat_head, 'num_classes', None)
        classes = {head_classes, feat_classes} - {None}
        if len(classes) > 1:
            raise ValueError(
                f'{owner}: feat_head.num_classes={feat_classes} differs from '
                f"head.num_classes={head_classes}; set both to the dataset's.")
        #: The heads' number of classes (None if neither has one), which
        #: :meth:`check_train_labels` checks the labels against.
        self.num_classes = classes.pop() if classes else None

        #: Weight of the feature loss, set by HybridTransitionHook.
        self.alpha: Optional[float] = None

    def check_train_labels(self, labels: np.ndarray) -> None:
        """Refuse training labels outside ``[0, num_classes)`` of the heads.

        Called once before training (by :class:`HybridTransitionHook`), so
        that no step reads labels back from the device to check them.

        Args:
            labels (np.ndarray): The label of every training sample.

        Raises:
            ValueError: Naming the first bad label and the allowed range.
        """
        bad = labels[(labels < 0) | (labels >= (self.num_classes or 0))]
        if self.num_classes and len(bad):
            raise ValueError(
                f'HybridClassifier: training label {bad[0]} is out of range '
                f"for the heads' num_classes={self.num_classes} (labels in "
                f"[0, {self.num_classes - 1}]); set it to the dataset's.")

    def loss(self, inputs: Union[dict, List[torch.Tensor]],
             data_samples: Union[dict, List[DataSample]]) -> dict:
        """Compute the weighted feature and classifier losses.

        Args:
            inputs (dict | list[Tensor]): ``'balanced'`` mode: a dict,
                ``views``: the V views of the uniform batch, each
                (N, C, H, W); ``balanced``: the class-balanced batch
                (N, C, H, W). What :class:`HybridDataPreprocessor` makes of
                a :class:`HybridPairDataset` batch. ``'uniform'`` mode: the
                list of the V views, each (N, C, H, W).
            data_samples (dict | list[DataSample]): ``'balanced'``:
                ``uniform`` and ``balanced``, the N data samples of each
                batch; ``'uniform'``: the N data samples.

        Returns:
            dict[str, Tensor]: ``loss_feat`` (alpha * L_feat) and
            ``loss_cls`` ((1 - alpha) * L_cls); other outputs of the heads
            get the prefix ``feat_`` or ``cls_``.

        Raises:
            RuntimeError: If ``alpha`` has not been set (no
                HybridTransitionHook).
            ValueError: If the batch is a dict (pairs) with
                ``cls_input='uniform'`` or not a dict with ``'balanced'``.
        """
        if self.alpha is None:
            raise RuntimeError('HybridClassifier.alpha is not set; add '
                               "dict(type='HybridTransitionHook') to "
                               'custom_hooks.')
        # What the preprocessor makes of the sampler's batch: a dict of
        # (uniform, balanced) pairs, or a list of the views of single images.
        pairs = isinstance(inputs, dict)
        if pairs != (self.cls_input == 'balanced'):
            raise ValueError(
                f'HybridClassifier(cls_input={self.cls_input!r}): the batch '
                f"has {'pairs' if pairs else 'no class-balanced part'}; "
                "'uniform' takes views of single images (DefaultSampler), "
                "'balanced' pairs of ClassBalancedPairSampler + "
                'HybridPairDataset.')
        if self.cls_input == 'balanced':
            views, uniform = list(inputs['views']), data_samples['uniform']
            uniform_rows = sum(view.shape[0] for view in views)
            feats = self.extract_feat(torch.cat(views + [inputs['balanced']]))
            uniform_feats, cls_feats = _split_rows(feats, uniform_rows)
            cls_samples = data_samples['balanced']
        else:
            views, uniform = list(inputs), list(data_samples)
            uniform_feats = cls_feats = self.extract_feat(torch.cat(views))
            cls_samples = uniform * len(views)
        # Every view of an image is one more row with the image's label.
        labels = torch.cat([sample.gt_label.reshape(-1)
                            for sample in uniform]).repeat(len(views))
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
