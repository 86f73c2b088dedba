# Hybrid-PSC-LA, ResNet-32, CIFAR-100-LT IF 100, with the stronger recipe for
# 400 epochs (warm-up 5 epochs, cosine decay to epoch 400).
_base_ = ['./hybrid_psc_la_r32_cifar100lt_strong_200e.py']
param_scheduler = _base_.warmup_cosine_400e
train_cfg = dict(max_epochs=400)
