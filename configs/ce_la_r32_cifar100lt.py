# LA-CE, ResNet-32, CIFAR-100-LT IF 100: plain cross-entropy training
# (ce_r32_cifar100lt.py) with logit-adjusted cross-entropy, tau 1 (Menon et
# al., ICLR 2021); the class counts come from the training set.
_base_ = ['./ce_r32_cifar100lt.py']

model = dict(
    head=dict(loss=dict(_delete_=True, type='LogitAdjustedLoss', tau=1.0)))
