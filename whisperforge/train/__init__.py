"""Fine-tuning: the Trainer run, its data, checkpoints, divergence and forgetting guards, memory
and GPU planning."""
