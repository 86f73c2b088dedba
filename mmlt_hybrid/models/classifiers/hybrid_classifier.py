"""The contrastive-learning hybrid network (Wang et al., CVPR 2021)."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmpretrain.models.classifiers import ImageClassifier
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@MODELS.register_module()
class HybridClassifier(ImageClassifier):
    """Shared backbone with a feature-learning and a classifier branch.

    Training loss (one backbone + neck pass over every image of the step):

    .. math::

        L = \\alpha \\, L_{feat}(B_{uniform}) +
            (1 - \\alpha) \\, L_{cls}(B_{balanced})

    - ``feat_head`` (e.g. ``SupConHead`` or ``PSCHead``) sees the V views of
      the N images of the instance-balanced (uniform) batch;
    - ``head`` (any mmpretrain classification head, e.g. ``LinearClsHead``
      with cross-entropy) sees the N images of the class-balanced batch.

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
            ``dict(type='LinearClsHead', num_classes=10, in_channels=64)``.
        feat_head: The feature head config, e.g. ``dict(type='SupConHead')``.
        pretrained: Checkpoint to initialise from. Defaults to None.
        train_cfg: Batch augmentations handed to the data preprocessor as
            ``batch_augments`` (as in ImageClassifier). Defaults to None.
        data_preprocessor: Config or module; the type defaults to
            ``'HybridDataPreprocessor'``, which stacks the views of the
            uniform batch and the balanced batch into one tensor.
        init_cfg: Initialisation config. Defaults to None.

    Inputs of :meth:`loss` (what ``HybridDataPreprocessor`` produces):
        ``inputs`` (V*N + N, C, H, W) ordered ``[view_1 (N), ..., view_V (N),
        balanced (N)]`` and ``data_samples`` ``[uniform (N), balanced (N)]``.
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 head: Optional[dict] = None,
                 feat_head: Optional[dict] = None,
                 pretrained: Optional[str] = None,
                 train_cfg: Optional[dict] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None):
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
        if feat_head is not None and not isinstance(feat_head, nn.Module):
            feat_head = MODELS.build(feat_head)
        self.feat_head = feat_head

        feat_classes = getattr(self.feat_head, 'num_classes', None)
        cls_classes = getattr(self.head, 'num_classes', None)
        if (feat_classes is not None and cls_classes is not None
                and feat_classes != cls_classes):
            raise ValueError(
                f'HybridClassifier: feat_head.num_classes={feat_classes} '
                f'does not match head.num_classes={cls_classes}; both must '
                "be the dataset's number of classes.")

        #: Weight of the feature loss, set by HybridTransitionHook.
        self.alpha: Optional[float] = None

    @property
    def with_feat_head(self) -> bool:
        """Whether the classifier has a feature head."""
        return getattr(self, 'feat_head', None) is not None

    @staticmethod
    def _split_rows(feats: Union[torch.Tensor, Sequence[torch.Tensor]],
                    index: int) -> Tuple:
        """Split every tensor of ``feats`` (tuple or tensor) at row
        ``index``."""
        if isinstance(feats, torch.Tensor):
            return feats[:index], feats[index:]
        return (tuple(f[:index] for f in feats),
                tuple(f[index:] for f in feats))

    def _check_labels(self, data_samples: List[DataSample]) -> None:
        """Raise a clear error for labels outside ``[0, num_classes)``."""
        num_classes = getattr(self.head, 'num_classes', None)
        labels = [
            sample.gt_label.reshape(-1) for sample in data_samples
            if sample is not None and 'gt_label' in sample
        ]
        if num_classes is None or not labels:
            return
        labels = torch.cat(labels)
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            raise ValueError(
                f'HybridClassifier: label {bad} is out of range for '
                f'head.num_classes={num_classes}; labels must be in '
                f"[0, {num_classes - 1}]. Set num_classes to the dataset's "
                'number of classes.')

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> dict:
        """Compute the weighted feature and classifier losses.

        Args:
            inputs: Images (V*N + N, C, H, W) ordered ``[view_1, ...,
                view_V, balanced]``, each block N rows.
            data_samples: 2N data samples: the N of the uniform batch, then
                the N of the balanced batch.

        Returns:
            dict[str, Tensor]: ``loss_feat`` (alpha * L_feat) and
            ``loss_cls`` ((1 - alpha) * L_cls); other outputs of the heads
            get the prefix ``feat_`` or ``cls_``.

        Raises:
            RuntimeError: If ``alpha`` has not been set (no
                HybridTransitionHook) or a head is missing.
            ValueError: If the shapes do not follow the layout above or a
                label is outside ``[0, head.num_classes)``.
        """
        if self.alpha is None:
            raise RuntimeError(
                'HybridClassifier.alpha is not set. Add '
                "dict(type='HybridTransitionHook') to custom_hooks in the "
                'config; it sets the weight alpha of the feature loss before '
                'every epoch (or iteration).')
        if not self.with_head or not self.with_feat_head:
            raise RuntimeError(
                'HybridClassifier.loss needs both `head` (classifier) and '
                '`feat_head` (feature head) to be configured.')
        num_samples = len(data_samples)
        rows = inputs.shape[0]
        if num_samples == 0 or num_samples % 2 != 0:
            raise ValueError(
                f'HybridClassifier: got {num_samples} data samples; expected '
                '2N (N of the uniform batch, then N of the balanced batch). '
                'Use HybridPairDataset with ClassBalancedPairSampler and '
                'HybridDataPreprocessor.')
        n = num_samples // 2
        if rows % n != 0 or rows // n < 2:
            raise ValueError(
                f'HybridClassifier: inputs have {rows} rows and there are '
                f'N={n} image pairs; rows must be (V + 1) * N with V >= 1 '
                'views of the uniform batch followed by the balanced batch.')
        num_views = rows // n - 1
        self._check_labels(data_samples)

        feats = self.extract_feat(inputs)
        uniform_feats, balanced_feats = self._split_rows(feats, num_views * n)
        feat_losses = self.feat_head.loss(uniform_feats, data_samples[:n])
        cls_losses = self.head.loss(balanced_feats, data_samples[n:])

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
