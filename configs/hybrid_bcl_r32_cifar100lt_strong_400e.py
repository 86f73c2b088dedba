# Hybrid-BCL, ResNet-32, CIFAR-100-LT IF 100, with the stronger recipe
# (_base_/recipes/cifar_strong.py): RandAugment and Cutout after crop and
# flip on the classifier's own view, 5-epoch warm-up and cosine decay, 200
# epochs; meant for a GPU.
_base_ = ['./hybrid_bcl_r32_cifar100lt.py', './_base_/recipes/cifar_strong.py']
data_preprocessor = dict(balanced_transforms=_base_.strong_batch_transforms)
param_scheduler = _base_.warmup_cosine_400e
train_cfg = dict(max_epochs=400)
