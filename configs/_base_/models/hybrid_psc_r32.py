# Hybrid-PSC (docs/method.md, "PSC loss"): Hybrid-SC with the prototypical
# supervised contrastive head in place of SupCon.
_base_ = ['./hybrid_sc_r32.py']

model = dict(
    feat_head=dict(
        _delete_=True,
        type='PSCHead',
        num_classes=100,
        in_channels=64,
        out_channels=128,
        loss=dict(type='PSCLoss', temperature=0.1),
    ))
