# CIFAR-100-LT for the hybrid networks: cifar10lt.py with CIFAR-100 (IF 100
# keeps 10,847 training images, 500 ... 5 per class). The imbalance factor
# is train_dataloader.dataset.dataset.imbalance_factor.
_base_ = ['./cifar10lt.py']

dataset_type = 'CIFAR100'
num_classes = 100
data_preprocessor = dict(
    num_classes=num_classes,
    # RGB normalisation of mmpretrain's CIFAR-100 configs
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418])

train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            dataset=dict(type=dataset_type, data_root='data/cifar100'))))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root='data/cifar100'))
test_dataloader = val_dataloader
