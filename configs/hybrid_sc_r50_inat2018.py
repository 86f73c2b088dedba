_base_ = [
    './_base_/datasets/inat2018.py',
    './_base_/models/hybrid_sc_r50.py',
    './_base_/schedules/imagenet_lt_100e.py',
    './_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=8142))
