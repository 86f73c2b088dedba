# Quick start: Hybrid-SC on a generated long-tailed set, no download needed.
# ResNet-20, 10 classes, 200 ... 20 training images per class (IF 10),
# 6 epochs; trains and tests in about a minute on a laptop CPU. The full
# recipe is the same model on real data: configs/hybrid_sc_r32_cifar10lt.py.
_base_ = ['./hybrid_sc_r32_cifar10lt.py']

model = dict(backbone=dict(depth=20))

train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        dataset=dict(
            imbalance_factor=10,
            dataset=dict(
                _delete_=True,
                type='SyntheticImageDataset',
                num_classes=10,
                images_per_class=200,
                split='train'))))
val_dataloader = dict(
    batch_size=100,
    dataset=dict(
        _delete_=True,
        type='SyntheticImageDataset',
        num_classes=10,
        images_per_class=50,
        split='test',
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader

# The paper's schedule shape (x0.1 at 60 % and 80 % of training) on 6 epochs,
# lr 0.5 scaled linearly to batch 64.
optim_wrapper = dict(optimizer=dict(lr=0.0625))
# --auto-scale-lr scales from the batch this lr is for (not the 512 of the
# full recipe, which would scale it twice).
auto_scale_lr = dict(base_batch_size=64)
param_scheduler = dict(milestones=[4, 5])
train_cfg = dict(max_epochs=6, val_interval=6)
default_hooks = dict(
    logger=dict(interval=5), checkpoint=dict(interval=6, max_keep_ckpts=1))
