"""Engine: config, training loop, schedules, checkpoints, evaluation."""
