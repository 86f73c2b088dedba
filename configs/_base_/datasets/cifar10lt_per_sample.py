# CIFAR-10-LT with mmpretrain's per-sample augmentation in data workers (the
# path before augmentation moved to the device): every sample is augmented by
# mmcv transforms in a worker (two views of the uniform image, one of the
# balanced image) and the preprocessor only normalises. Slower (see
# docs/benchmarks.md); kept for comparison and for pipelines that have no
# batch counterpart. Resume stays exact: the sampler seeds every pair's
# transforms.
_base_ = ['./cifar10lt.py']

train_dataloader = dict(
    num_workers=8,
    persistent_workers=True,
    dataset=dict(
        pipeline={{_base_.feat_pipeline}},
        balanced_pipeline={{_base_.cls_pipeline}},
        hold_in_memory=False))
data_preprocessor = dict(num_views=None, batch_transforms=[])
