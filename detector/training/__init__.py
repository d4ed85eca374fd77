"""Fine-tuning an SSD on the user's own objects: data, augmentation, loss, evaluation, loop."""
