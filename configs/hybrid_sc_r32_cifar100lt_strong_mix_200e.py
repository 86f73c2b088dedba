# Hybrid-SC as in the paper (classifier on the class-balanced batch),
# ResNet-32, CIFAR-100-LT IF 100, with the stronger recipe and Mixup or
# CutMix (one of the two per step, with equal probability) on the
# classifier's balanced images. The feature branch's views are never mixed;
# the balanced samples carry the mixed scores, which the classifier's
# cross-entropy takes as soft targets.
_base_ = ['./hybrid_sc_r32_cifar100lt.py', './_base_/recipes/cifar_strong.py']
model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', use_soft=True)),
    train_cfg=_base_.mix_train_cfg)
data_preprocessor = dict(batch_transforms=_base_.strong_batch_transforms)
param_scheduler = _base_.warmup_cosine_200e
