"""A procedurally generated image dataset that needs no download."""
from typing import List, Optional

import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from ..validation import check_choice, check_int


@DATASETS.register_module()
class SyntheticImageDataset(BaseDataset):
    """Balanced, procedurally generated RGB images with a learnable label.

    Each class owns a colour and a sinusoidal grating (its own orientation and
    frequency); every image draws a random phase, a random shift of the colour
    and Gaussian pixel noise, so a small network needs a few epochs to tell the
    classes apart. The images are generated in memory at ``full_init`` from
    ``seed``: the same arguments always give the same pixels, and the ``test``
    split uses a different stream from the ``train`` split. It is the data of
    the quick start, and it stands in for CIFAR where no copy is at hand.

    Like mmpretrain's ``CIFAR10``, every data info holds the decoded image in
    ``img`` (uint8, HWC, RGB), so pipelines start without a loading step.

    Args:
        num_classes: Number of classes.
        images_per_class: Images generated for every class.
        image_size: Side of the square images in pixels.
        split: ``'train'`` or ``'test'``.
        seed: Seed of the generator.
        noise_std: Standard deviation of the pixel noise (0-255 scale).
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``
            (``pipeline``, ``test_mode``, ``lazy_init``, ...).

    Raises:
        ValueError: If a count or size is not an integer >= 1, or ``split``
            is neither ``'train'`` nor ``'test'``.
    """

    def __init__(self,
                 num_classes: int = 10,
                 images_per_class: int = 100,
                 image_size: int = 32,
                 split: str = 'train',
                 seed: int = 0,
                 noise_std: float = 40.,
                 **kwargs) -> None:
        owner = 'SyntheticImageDataset'
        self.num_classes = check_int(owner, 'num_classes', num_classes)
        self.images_per_class = check_int(owner, 'images_per_class',
                                          images_per_class)
        self.image_size = check_int(owner, 'image_size', image_size)
        self.split = check_choice(owner, 'split', split, ('train', 'test'))
        self.seed = seed
        self.noise_std = noise_std
        classes: Optional[List[str]] = kwargs.pop('classes', None)
        if classes is None:
            classes = [f'class_{i}' for i in range(num_classes)]
        super().__init__(ann_file='', classes=classes, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Generate every image of the split.

        Returns:
            One dict per image with ``img`` and ``gt_label``, grouped by class
            in label order.
        """
        # The class appearance depends only on ``seed``; the per-image draws
        # also depend on the split, so train and test images differ.
        class_rng = np.random.default_rng(self.seed)
        colours = class_rng.uniform(40, 215, size=(self.num_classes, 3))
        angles = class_rng.uniform(0, np.pi, size=self.num_classes)
        freqs = class_rng.uniform(1.0, 4.0, size=self.num_classes)
        image_rng = np.random.default_rng(
            [self.seed, 0 if self.split == 'train' else 1])

        side = np.linspace(0, 2 * np.pi, self.image_size, endpoint=False)
        yy, xx = np.meshgrid(side, side, indexing='ij')
        data_list = []
        for label in range(self.num_classes):
            wave = (np.cos(angles[label]) * xx +
                    np.sin(angles[label]) * yy) * freqs[label]
            for _ in range(self.images_per_class):
                phase = image_rng.uniform(0, 2 * np.pi)
                grating = 50 * np.sin(wave + phase)[..., None]
                colour = colours[label] + image_rng.normal(0, 20, size=3)
                noise = image_rng.normal(
                    0,
                    self.noise_std,
                    size=(self.image_size, self.image_size, 3))
                img = np.clip(colour + grating + noise, 0, 255)
                data_list.append(
                    dict(img=img.astype(np.uint8), gt_label=label))
        return data_list
