_base_ = [
    './_base_/datasets/cifar10lt.py',
    './_base_/models/ce_r32.py',
    './_base_/schedules/cifar_lt_200e.py',
    './_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=10))

# Plain cross-entropy: instance-balanced (uniformly shuffled) single images
# of the same long-tailed set, no class-balanced branch. The data
# preprocessor gives each image the CIFAR augmentation on the device.
train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True))
