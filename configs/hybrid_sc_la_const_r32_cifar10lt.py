# Hybrid-SC-LA with constant loss weights (beyond the paper, second attempt,
# step i), ResNet-32, CIFAR-10-LT IF 100: Hybrid-SC-LA (both heads on the
# two uniform views, logit-adjusted cross-entropy, tau 1) with BCL's
# constant weights, 2.0 x L_cls + 0.6 x L_feat, instead of the parabolic
# alpha that starves the classifier early on.
_base_ = ['./hybrid_sc_la_r32_cifar10lt.py']

# alpha stays 0.5: 0.5 x 1.2 = 0.6 on the feature loss, 0.5 x 4.0 = 2.0 on
# the classifier's.
model = dict(
    feat_head=dict(loss=dict(loss_weight=1.2)),
    head=dict(loss=dict(loss_weight=4.0)))
custom_hooks = [
    dict(type='HybridTransitionHook', schedule='constant', value=0.5),
    dict(type='ClassCountsHook'),
    dict(type='ModelDataCheckHook'),
]
