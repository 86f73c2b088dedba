"""The CIFAR ResNet of He et al. (2016), with option-A identity shortcuts."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from ...validation import check_int

#: Channels of the three stages (He et al. 2016, section 4.2).
STAGE_CHANNELS = (16, 32, 64)
#: Strides of the three stages.
STAGE_STRIDES = (1, 2, 2)


class ZeroPadShortcut(nn.Module):
    """Parameter-free identity shortcut ("option A").

    Subsamples the input spatially by ``stride`` and appends zero channels
    (half before, half after the existing ones) up to ``out_channels``.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of the output; at least ``in_channels``.
        stride: Spatial subsampling factor.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        extra = out_channels - in_channels
        self.stride = stride
        self.pad_before = extra // 2
        self.pad_after = extra - extra // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Subsample and zero-pad ``x`` (N, C, H, W)."""
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.pad_before or self.pad_after:
            x = F.pad(x, (0, 0, 0, 0, self.pad_before, self.pad_after))
        return x


class CifarBasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection.

    conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU. The shortcut is
    the identity when the shape is unchanged and :class:`ZeroPadShortcut`
    otherwise.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        stride: Stride of the first convolution.
        norm_cfg: Config of the normalisation layers.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 stride: int = 1,
                 norm_cfg: dict = dict(type='BN')):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.norm1 = build_norm_layer(norm_cfg, out_channels)[1]
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.norm2 = build_norm_layer(norm_cfg, out_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        if stride != 1 or in_channels != out_channels:
            self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Forward one block."""
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


@MODELS.register_module()
class CifarResNet(BaseBackbone):
    """ResNet for 32x32 images (He et al., "Deep Residual Learning for Image
    Recognition", CVPR 2016, section 4.2).

    A 3x3 stem convolution with 16 channels (BN, ReLU), then three stages of
    ``n = (depth - 2) / 6`` basic blocks with 16, 32 and 64 channels and
    strides 1, 2 and 2. Where the shape changes, the shortcut is the
    parameter-free zero-padded identity ("option A"). Depths 20, 32, 44, 56
    and 110 give the networks of the paper; ResNet-32 has about 0.46 M
    parameters. Follow it with mmpretrain's ``GlobalAveragePooling`` neck for
    the 64-d feature.

    Weights are initialised by :meth:`init_weights` (called by the runner):
    Kaiming-normal (fan-in, ReLU gain) for convolutions, weight 1 and bias 0
    for normalisation layers.

    Args:
        depth: Network depth, ``6n + 2`` with ``n >= 1``. Defaults to 32.
        in_channels: Channels of the input image. Defaults to 3.
        out_indices: Stages whose output is returned (0, 1, 2; negative
            indices count from the end). Defaults to ``(2, )``.
        frozen_stages: Stages to freeze (parameters fixed, normalisation in
            eval mode): -1 freezes nothing, 0 the stem, ``k`` the stem and
            stages 0..k-1. Defaults to -1.
        norm_eval: Keep normalisation layers in eval mode while training.
            Defaults to False.
        norm_cfg: Config of the normalisation layers. Defaults to
            ``dict(type='BN', requires_grad=True)``.
        init_cfg: Initialisation config. Defaults to Kaiming-normal for
            convolutions and constant 1 for normalisation layers.

    Returns (forward):
        tuple[Tensor]: one feature map per entry of ``out_indices``.

    Raises:
        ValueError: If a setting is outside what is written above.
    """

    num_stages = 3

    def __init__(self,
                 depth: int = 32,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (2, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 init_cfg: Optional[Union[dict, List[dict]]] = [
                     dict(
                         type='Kaiming',
                         layer='Conv2d',
                         mode='fan_in',
                         nonlinearity='relu',
                         distribution='normal'),
                     dict(
                         type='Constant',
                         val=1,
                         layer=['_BatchNorm', 'GroupNorm'])
                 ]):
        super().__init__(init_cfg=init_cfg)
        owner = 'CifarResNet'
        if type(depth) is not int or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f'{owner}: depth={depth!r} is not allowed; it must be 6n + 2 '
                'with n >= 1 (e.g. 20, 32, 44, 56, 110).')
        check_int(owner, 'in_channels', in_channels)
        indices = (out_indices, ) if isinstance(out_indices, int) else \
            out_indices
        stages = range(-self.num_stages, self.num_stages)
        if not (isinstance(indices, Sequence) and indices
                and all(type(i) is int and i in stages for i in indices)):
            raise ValueError(
                f'{owner}: out_indices={out_indices!r} is not allowed; it must'
                ' be a stage index (0, 1, 2, or -3, -2, -1 from the end) or a '
                'non-empty sequence of them.')
        self.out_indices = tuple(i % self.num_stages for i in indices)
        if type(frozen_stages) is not int or \
                frozen_stages not in range(-1, self.num_stages + 1):
            raise ValueError(
                f'{owner}: frozen_stages={frozen_stages!r} is not allowed; it '
                f'must be an integer in [-1, {self.num_stages}] (-1 freezes '
                'nothing).')

        self.depth = depth
        self.blocks_per_stage = (depth - 2) // 6
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        self.conv1 = nn.Conv2d(
            in_channels, STAGE_CHANNELS[0], 3, padding=1, bias=False)
        self.norm1 = build_norm_layer(norm_cfg, STAGE_CHANNELS[0])[1]
        self.relu = nn.ReLU(inplace=True)

        self.res_layers: List[str] = []
        channels = STAGE_CHANNELS[0]
        for i, (out_channels,
                stride) in enumerate(zip(STAGE_CHANNELS, STAGE_STRIDES)):
            blocks = []
            for j in range(self.blocks_per_stage):
                blocks.append(
                    CifarBasicBlock(
                        channels,
                        out_channels,
                        stride=stride if j == 0 else 1,
                        norm_cfg=norm_cfg))
                channels = out_channels
            name = f'layer{i + 1}'
            self.add_module(name, nn.Sequential(*blocks))
            self.res_layers.append(name)
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        """Fix the parameters and statistics of the frozen stages."""
        if self.frozen_stages >= 0:
            for module in (self.conv1, self.norm1):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False
        for i in range(self.frozen_stages):
            layer = getattr(self, self.res_layers[i])
            layer.eval()
            for param in layer.parameters():
                param.requires_grad = False

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Forward images (N, C, H, W); return the requested stage outputs."""
        x = self.relu(self.norm1(self.conv1(x)))
        outs = []
        for i, name in enumerate(self.res_layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def train(self, mode: bool = True) -> 'CifarResNet':
        """Set train mode, keeping frozen stages and (optionally) norms in
        eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
