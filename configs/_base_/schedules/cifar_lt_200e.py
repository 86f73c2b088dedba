# The paper's CIFAR-LT recipe (docs/method.md, "Training recipe"): batch 512
# per branch, SGD momentum 0.9, weight decay 1e-4, lr 0.5, 200 epochs, lr
# x0.1 at epochs 120 and 160, no warm-up. The batch (512 per branch on one
# GPU) is set in the CIFAR-LT data configs. On N GPUs either keep 512 in total
# (--cfg-options train_dataloader.batch_size=512/N) or pass --auto-scale-lr,
# which scales lr linearly from base_batch_size 512.

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=1e-4))

param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[120, 160], gamma=0.1)

train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=10)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=512)
