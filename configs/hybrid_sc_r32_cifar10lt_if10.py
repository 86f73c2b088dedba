_base_ = ['./hybrid_sc_r32_cifar10lt.py']

train_dataloader = dict(dataset=dict(dataset=dict(imbalance_factor=10)))
