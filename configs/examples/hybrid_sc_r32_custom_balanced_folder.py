# Hybrid-SC (ResNet-32) on your own BALANCED image folder, cut to a long
# tail: class i (sorted folder order, i = 0 .. C-1) keeps
#     n_i = int(n_max * (1 / imbalance_factor) ** (i / (C - 1)))
# of its images (the CIFAR-LT protocol, LongTailedDataset with
# profile='exp'; n_max = the largest class folder; the kept images are
# drawn with numpy's legacy RNG seeded 0). Every class folder needs at least
# n_i images and the last class at least one (n_max >= imbalance_factor).
# Guide: docs/custom_dataset.md.
#
# Layout (class = folder name; labels follow the sorted folder names;
# hidden folders such as .ipynb_checkpoints are skipped):
#     <data_root>/train/<class>/*.png   (or .jpg, .jpeg, .bmp, ...)
#     <data_root>/test/<class>/*.png    (balanced)
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
data_root = 'data/my_balanced_dataset'
# The number of class folders under train/ (a wrong value stops training
# with a message naming the right one).
num_classes = 10
# Ratio of the largest to the smallest class after the cut.
imbalance_factor = 100
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
            # cut the balanced folder to an exponential long tail
            profile='exp',
            imbalance_factor=imbalance_factor,
            dataset=dict(data_root=data_root, pipeline=load_pipeline))))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        pipeline=load_pipeline + [dict(type='PackInputs')]))
test_dataloader = val_dataloader
