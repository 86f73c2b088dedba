# ImageNet-LT (Liu et al. 2019) for the hybrid networks: 115.8k training
# images of the 1000 ImageNet classes (1280 ... 5 per class), tested on the
# balanced 50k-image test list (50 per class). The set is long-tailed already:
# the lists are read as they are (LongTailedDataset with profile='none' only
# exposes the per-class counts for the metric and the sampler).
#
# Expected layout (the list files of the Decoupling / OLTR releases, lines
# "<path relative to data_root> <label>"):
#     data/imagenet/train/n01440764/n01440764_10026.JPEG ...
#     data/imagenet/val/...
#     data/imagenet/meta/ImageNet_LT_train.txt, ImageNet_LT_test.txt
#
# Images are decoded BGR (mmcv's loader; CheckedLoadImageFromFile names a file
# it cannot read); the preprocessor flips them to RGB before
# normalising with the ImageNet RGB mean / std, and the grayscale weights are
# given in BGR order, as in mmpretrain's own configs.
# ImageFolderDataset is mmpretrain's CustomDataset reading the lists strictly:
# a malformed line (blank, one field, a label that is not an integer, a label
# beyond the classes) is refused naming the file and the line number.
dataset_type = 'ImageFolderDataset'
data_root = 'data/imagenet'
num_classes = 1000
# Workers decode and take the random-resized crop to 224 x 224 (one crop per
# view of the uniform image); everything after it runs on the whole uint8
# batch on the device, in HybridDataPreprocessor:
# - feature branch: flip, colour jitter p=0.8, grayscale p=0.2 (the
#   supervised-contrastive augmentation; open: the paper does not list its
#   large-scale augmentation);
# - classifier branch (and plain-CE training): flip (the standard ImageNet
#   crop + flip).
# The grayscale weights are in BGR order: the images are still BGR when the
# transforms run (the preprocessor flips them to RGB afterwards, as in
# mmpretrain's own configs).
data_preprocessor = dict(
    type='HybridDataPreprocessor',
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
    num_views=2,
    batch_transforms=[
        dict(type='BatchRandomFlip', prob=0.5, direction='horizontal'),
        dict(
            type='BatchColorJitter',
            brightness=0.4,
            contrast=0.4,
            saturation=0.4,
            hue=0.,
            prob=0.8),
        dict(
            type='BatchRandomGrayscale',
            prob=0.2,
            keep_channels=True,
            channel_weights=(0.114, 0.587, 0.299)),
    ],
    balanced_transforms=[
        dict(type='BatchRandomFlip', prob=0.5, direction='horizontal'),
    ])

random_resized_crop = dict(
    type='RandomResizedCrop', scale=224, backend='pillow')
feat_pipeline = [
    dict(type='MultiView', num_views=2, transforms=[[random_resized_crop]]),
    dict(type='PackInputs'),
]
cls_pipeline = [random_resized_crop, dict(type='PackInputs')]
test_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    sampler=dict(type='ClassBalancedPairSampler', shuffle=True),
    dataset=dict(
        type='HybridPairDataset',
        pipeline=feat_pipeline,
        balanced_pipeline=cls_pipeline,
        dataset=dict(
            type='LongTailedDataset',
            profile='none',
            # The wrapped set only loads images; HybridPairDataset applies
            # the pipelines above.
            dataset=dict(
                type=dataset_type,
                data_root=data_root,
                ann_file='meta/ImageNet_LT_train.txt',
                data_prefix='',
                pipeline=[dict(type='CheckedLoadImageFromFile')]))),
)

val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='meta/ImageNet_LT_test.txt',
        data_prefix='',
        test_mode=True,
        pipeline=test_pipeline),
)
# Per-class training counts come from the training set (ClassCountsHook).
val_evaluator = dict(type='LongTailAccuracy', topk=(1, 5))

test_dataloader = val_dataloader
test_evaluator = val_evaluator
