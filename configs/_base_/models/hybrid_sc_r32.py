# Hybrid-SC (docs/method.md, "The hybrid network" and "SupCon loss"): the
# CE model plus a supervised contrastive feature branch, alpha decaying
# parabolically from 1 to 0.
_base_ = ['./ce_r32.py']

model = dict(
    type='HybridClassifier',
    feat_head=dict(
        type='SupConHead',
        in_channels=64,
        out_channels=128,
        loss=dict(type='SupConLoss', temperature=0.1),
    ))

custom_hooks = [
    dict(type='HybridTransitionHook', schedule='parabolic'),
    dict(type='ClassCountsHook'),
    dict(type='ModelDataCheckHook'),
]
