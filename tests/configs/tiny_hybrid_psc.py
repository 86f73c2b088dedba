# tiny_hybrid_sc.py with the PSC feature head.
_base_ = ['./tiny_hybrid_sc.py']

model = dict(
    feat_head=dict(
        _delete_=True,
        type='PSCHead',
        num_classes=10,
        in_channels=64,
        out_channels=128,
        loss=dict(type='PSCLoss', temperature=1.0)))
