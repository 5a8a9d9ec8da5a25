"""Training the SC-VAE: the loop, run checkpoints, distributed set-up, reconstruction metrics."""
