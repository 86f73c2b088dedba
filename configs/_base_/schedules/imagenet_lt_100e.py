# Schedule for ResNet-50 on ImageNet-LT / iNaturalist 2018. The paper's
# large-scale schedule is not given (docs/method.md, "Training recipe");
# these are the common long-tail settings (open): batch 256 per branch in
# total (4 GPUs x 64, the per-GPU batch of the data configs), SGD momentum
# 0.9, lr 0.1, weight decay 5e-4, cosine decay over 100 epochs.

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4))

param_scheduler = dict(
    type='CosineAnnealingLR', by_epoch=True, T_max=100, eta_min=0.)

train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=10)
val_cfg = dict()
test_cfg = dict()

auto_scale_lr = dict(base_batch_size=256)  # lr 0.1 is for 4 GPUs x 64
