# Hybrid-PSC on iNaturalist 2018: with 8,142 classes each embedding is
# contrasted with 1,024 sampled negative prototypes instead of all 8,141
# (docs/method.md, "PSC loss"; an open option).
_base_ = ['./hybrid_sc_r50_inat2018.py']

model = dict(
    feat_head=dict(
        _delete_=True,
        type='PSCHead',
        num_classes=8142,
        in_channels=2048,
        out_channels=128,
        loss=dict(type='PSCLoss', temperature=0.1, num_negatives=1024),
    ))
