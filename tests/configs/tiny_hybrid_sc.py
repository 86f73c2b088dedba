# The quick-start Hybrid-SC config shrunk to a test run: 10 classes of
# 24 ... 2 generated training images (IF 10, 95 images), batch 16 (6
# iterations an epoch), 3 epochs, every iteration logged on its own.
_base_ = ['../../configs/quickstart_hybrid_sc_r20_synthetic.py']

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(dataset=dict(dataset=dict(images_per_class=24))))
val_dataloader = dict(
    batch_size=20, num_workers=0, dataset=dict(images_per_class=4))
test_dataloader = val_dataloader

param_scheduler = dict(milestones=[2, 3])
train_cfg = dict(max_epochs=3, val_interval=3)
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=-1))
log_processor = dict(window_size=1)
