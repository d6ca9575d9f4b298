"""Training: the trainer, its YAML config, losses, checkpoints, distributed set-up, training
data plumbing (datasets, sampling, batch schedules) and model releases.
"""
