_base_ = [
    './_base_/datasets/cifar10lt.py',
    './_base_/models/hybrid_psc_r32.py',
    './_base_/schedules/cifar_lt_200e.py',
    './_base_/default_runtime.py',
]

model = dict(
    head=dict(num_classes=10),
    # tau = 1.0 on CIFAR-10 (docs/method.md, "PSC loss").
    feat_head=dict(num_classes=10, loss=dict(temperature=1.0)))
