# Hybrid-SC-LA, ResNet-32, CIFAR-10-LT IF 100, with the stronger recipe
# (_base_/recipes/cifar_strong.py): RandAugment and Cutout after crop and
# flip, 5-epoch warm-up and cosine decay, 200 epochs.
_base_ = [
    './hybrid_sc_la_r32_cifar10lt.py', './_base_/recipes/cifar_strong.py'
]
data_preprocessor = dict(batch_transforms=_base_.strong_batch_transforms)
param_scheduler = _base_.warmup_cosine_200e
