_base_ = [
    './_base_/datasets/cifar100lt.py',
    './_base_/models/hybrid_psc_r32.py',
    './_base_/schedules/cifar_lt_200e.py',
    './_base_/default_runtime.py',
]
