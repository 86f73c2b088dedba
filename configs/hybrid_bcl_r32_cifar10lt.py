# Hybrid-BCL (beyond the paper, second attempt, step iii), ResNet-32,
# CIFAR-10-LT IF 100: step ii (constant weights 2.0 / 0.6, logit-adjusted
# classifier on a view of its own) with the balanced contrastive loss of
# BCL (Zhu et al., CVPR 2022) as the feature loss: class-averaged
# denominator and class-complement prototypes made from the classifier's
# weights through an MLP; projection 64 -> 512 -> BN -> 128, tau 0.1.
_base_ = ['./hybrid_sc_la_view_r32_cifar10lt.py']

model = dict(
    feat_head=dict(
        _delete_=True,
        type='BCLHead',
        num_classes=10,
        in_channels=64,
        hid_channels=512,
        out_channels=128,
        with_bn=True,
        loss=dict(
            type='BalancedContrastiveLoss', temperature=0.1, loss_weight=1.2)))
