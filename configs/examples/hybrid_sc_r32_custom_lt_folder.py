# Hybrid-SC (ResNet-32) on your own image folder that is ALREADY
# long-tailed: every training image is used, and the per-class counts (for
# the class-balanced sampler and the many/medium/few split of the metric)
# are read from the data (LongTailedDataset with profile='none').
# Guide: docs/custom_dataset.md.
#
# Layout (class = folder name; labels follow the sorted folder names;
# hidden folders such as .ipynb_checkpoints are skipped):
#     <data_root>/train/<class>/*.png   (or .jpg, .jpeg, .bmp, ...)
#     <data_root>/test/<class>/*.png    (ideally balanced)
#
# Everything else is the shipped CIFAR-LT recipe
# (configs/hybrid_sc_r32_cifar10lt.py on the image-folder data config): the
# training set decoded once and held in memory, augmented on the device,
# batch 512 per branch, SGD lr 0.5, 200 epochs, alpha parabolic.
_base_ = [
    '../_base_/datasets/cifar10lt_folder.py',
    '../_base_/models/hybrid_sc_r32.py',
    '../_base_/schedules/cifar_lt_200e.py',
    '../_base_/default_runtime.py',
]

# ---- Edit these for your data ----------------------------------------------
data_root = 'data/my_lt_dataset'
# The number of class folders under train/ (a wrong value stops training
# with a message naming the right one).
num_classes = 10
# Every image is resized to image_size x image_size when it is read (aspect
# ratio not kept), so that images of any size form one batch; the random
# crop keeps that size (padding image_size // 8, 4 for 32). ResNet-32 is
# built for small images: keep 32 (up to about 64).
image_size = 32
# -----------------------------------------------------------------------------

# Read (mmcv, BGR), resize, then RGB like the CIFAR configs (to_rgb=False in
# the preprocessor). CheckedLoadImageFromFile names a file it cannot read.
load_pipeline = [
    dict(type='CheckedLoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size)),
    dict(type='NumpyToPIL', to_rgb=True),
    dict(type='PILToNumpy', to_bgr=False),
]

model = dict(head=dict(num_classes=num_classes))
# The CIFAR-10 RGB mean / std of the base config; replace them by your
# training set's (per channel, 0..255) if it looks very different.
data_preprocessor = dict(
    num_classes=num_classes,
    batch_transforms=[
        dict(
            type='BatchRandomCrop',
            crop_size=image_size,
            padding=image_size // 8),
        dict(type='BatchRandomFlip', prob=0.5, direction='horizontal'),
        dict(
            type='BatchRandomGrayscale',
            prob=0.2,
            keep_channels=True,
            channel_weights=(0.299, 0.587, 0.114)),
    ])

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            # keep every image: the folder is long-tailed already
            profile='none',
            dataset=dict(data_root=data_root, pipeline=load_pipeline))))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        pipeline=load_pipeline + [dict(type='PackInputs')]))
test_dataloader = val_dataloader
