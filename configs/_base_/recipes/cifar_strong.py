# The stronger CIFAR-LT recipe of the methods that followed the hybrid
# networks (e.g. BCL, CVPR 2022; ProCo, TPAMI 2024), built from parts of this
# package: RandAugment and Cutout on top of the paper's crop and flip, and a
# 5-epoch linear warm-up followed by cosine decay, at the paper's batch and
# learning rate. Every transform runs on the whole uint8 batch on the
# model's device (HybridDataPreprocessor.batch_transforms), each view of
# each image with its own draws from the step's generator, so the recipe
# keeps the device path's speed and its bit-exact resume.
#
# Nothing here is set directly: a row config inherits this file beside its
# method config and takes what it needs, e.g.
#     data_preprocessor = dict(batch_transforms=_base_.strong_batch_transforms)
#     param_scheduler = _base_.warmup_cosine_200e
#     model = dict(train_cfg=_base_.mix_train_cfg)
strong_batch_transforms = [
    dict(type='BatchRandomCrop', crop_size=32, padding=4),
    dict(type='BatchRandomFlip', prob=0.5, direction='horizontal'),
    # two ops per image from mmpretrain's 'timm_increasing' list, at
    # magnitude level 9 of 10; geometric ops fill with grey 128
    dict(
        type='BatchRandAugment',
        policies='timm_increasing',
        num_policies=2,
        magnitude_level=9,
        total_level=10,
        hparams=dict(pad_val=128)),
    # one 16 x 16 square per image, anywhere (clipped at the borders)
    dict(type='BatchCutout', shape=16, pad_val=128),
]

# Mixup or CutMix (one of the two per step, with equal probability), as
# mmpretrain's `model.train_cfg`: they mix the images the classifier alone
# reads (single images, or the balanced part of a hybrid batch) and give
# their data samples mixed scores (soft targets for the classifier's loss).
mix_train_cfg = dict(augments=[
    dict(type='Mixup', alpha=0.8),
    dict(type='CutMix', alpha=1.0),
])


def _warmup_cosine(epochs):
    return [
        dict(
            type='LinearLR',
            start_factor=0.01,
            by_epoch=True,
            begin=0,
            end=5,
            convert_to_iter_based=True),
        dict(
            type='CosineAnnealingLR',
            eta_min=0.0,
            by_epoch=True,
            begin=5,
            end=epochs,
            convert_to_iter_based=True),
    ]


warmup_cosine_200e = _warmup_cosine(200)
warmup_cosine_400e = _warmup_cosine(400)
