"""Training: the PPO loss, start-step schedules, checkpoints and the one trainer (plus pretraining)."""
