# The shipped tiny Hybrid-SC folder config with the stronger recipe
# (RandAugment, Cutout, warm-up + cosine) and Mixup / CutMix on the
# classifier's balanced images, as configs/hybrid_sc_r32_cifar100lt_
# strong_mix_200e.py composes them.
_base_ = [
    './tiny_hybrid_cifar10lt_folder.py',
    '../../configs/_base_/recipes/cifar_strong.py',
]
model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', use_soft=True)),
    train_cfg=_base_.mix_train_cfg)
data_preprocessor = dict(batch_transforms=_base_.strong_batch_transforms)
param_scheduler = _base_.warmup_cosine_200e
