# CE-CBS, ResNet-32, CIFAR-10-LT IF 100: plain cross-entropy
# (ce_r32_cifar10lt.py) on class-balanced single images: a class
# uniformly, then an image of it, as many an epoch as the long-tailed set
# has.
_base_ = ['./ce_r32_cifar10lt.py']

train_dataloader = dict(
    sampler=dict(_delete_=True, type='ClassBalancedSampler'))
