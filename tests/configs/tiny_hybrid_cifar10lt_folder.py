# The shipped Hybrid-SC CIFAR-10-LT recipe as shipped (data held in memory,
# augmentation on the device), read from an image folder: the composition of
# configs/hybrid_sc_r32_cifar10lt.py with the folder data config. The tests
# set the folder (data_root), the model size and the run length with
# --cfg-options.
_base_ = [
    '../../configs/_base_/datasets/cifar10lt_folder.py',
    '../../configs/_base_/models/hybrid_sc_r32.py',
    '../../configs/_base_/schedules/cifar_lt_200e.py',
    '../../configs/_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=10))
