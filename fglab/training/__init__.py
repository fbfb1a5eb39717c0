"""Training: the epoch loop with validation selection and resumable checkpoints, and the
fglab retrieval method built on it."""
