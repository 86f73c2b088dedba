# Hybrid-SC-LA-view (beyond the paper, second attempt, step ii), ResNet-32,
# CIFAR-100-LT IF 100: step i (constant weights, logit-adjusted classifier)
# with a classifier view of its own: the feature head reads the two
# contrastive views of every uniform image, the classifier one more view of
# it, made on the device with its own transforms (crop and flip); 3N images
# a step, like the paper's hybrid, and no class-balanced batch.
_base_ = ['./hybrid_sc_la_const_r32_cifar100lt.py']

model = dict(cls_input='own_view')
# The classifier's view: the paper's crop and flip (the contrastive views
# keep crop, flip and grey).
data_preprocessor = dict(balanced_transforms=[
    dict(type='BatchRandomCrop', crop_size=32, padding=4),
    dict(type='BatchRandomFlip', prob=0.5, direction='horizontal'),
])
