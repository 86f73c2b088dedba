"""The paper's CIFAR augmentation as the tests expect it: its settings, and
every image it can make of a source image, written with ``unfold`` and numpy
rather than with the transforms under test."""
import numpy as np
import torch
import torch.nn.functional as F

# The paper's CIFAR augmentation (docs/method.md, "Augmentation").
CROP, PAD = 32, 4
FLIP_PROB = 0.5
GRAY_PROB = 0.2
GRAY_WEIGHTS_RGB = (0.299, 0.587, 0.114)
POSITIONS = 2 * PAD + 1  # crop offsets along each side: 9


def denormalise(pre, images: torch.Tensor, to_rgb: bool) -> torch.Tensor:
    """Undo the normalisation (and channel flip) of ``pre`` (a
    ``HybridDataPreprocessor``): the uint8 images, in the data pipeline's
    channel order, it normalised."""
    values = images * pre.std + pre.mean
    rounded = values.round()
    assert (values - rounded).abs().max() < 1e-3
    assert rounded.min() >= 0 and rounded.max() <= 255
    rounded = rounded.to(torch.uint8)
    return rounded[:, [2, 1, 0]] if to_rgb else rounded


def cifar_outcomes(image: torch.Tensor) -> torch.Tensor:
    """Every image the paper's CIFAR augmentation can make of ``image``
    (3, 32, 32), indexed ``[flipped, grey, top, left]``: the crop at offset
    (top, left) of the image zero-padded by 4, flipped or not, grey or not
    (as mmcv's RandomGrayscale computes it)."""
    padded = F.pad(image, (PAD, PAD, PAD, PAD))
    crops = padded.unfold(1, CROP,
                          1).unfold(2, CROP,
                                    1).permute(1, 2, 0, 3,
                                               4)  # (top, left, C, H, W)
    assert crops.shape[:2] == (POSITIONS, POSITIONS)
    weights = np.array(GRAY_WEIGHTS_RGB) / sum(GRAY_WEIGHTS_RGB)
    outcomes = []
    for view in (crops, crops.flip(-1)):
        hwc = view.permute(0, 1, 3, 4, 2).numpy()
        grey = torch.from_numpy((weights * hwc).sum(axis=-1).astype('uint8'))
        outcomes.append(torch.stack([view, grey[:, :, None].expand_as(view)]))
    return torch.stack(outcomes)


def identify_cifar_draws(rows: torch.Tensor,
                         sources: torch.Tensor) -> torch.Tensor:
    """(flipped, grey, top, left) of every augmented row, checking that it
    is exactly one of the outcomes of the augmentation of its source."""
    draws = []
    for row, source in zip(rows, sources):
        hits = (cifar_outcomes(source) == row).flatten(4).all(-1).nonzero()
        assert len(hits) == 1, (
            'an augmented image is not one crop (offset within the 9 x 9 '
            'positions) of its zero-padded source, flipped or not, grey '
            'or not')
        draws.append(hits[0])
    return torch.stack(draws)
