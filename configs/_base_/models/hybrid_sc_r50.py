# Hybrid-SC on ResNet-50 for ImageNet-LT / iNaturalist 2018: the ResNet-32
# hybrid model with the backbone and the widths swapped.
_base_ = ['./hybrid_sc_r32.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'),
    head=dict(num_classes=1000, in_channels=2048),
    feat_head=dict(in_channels=2048),
)
