"""Multi-run experiments built from the trainer and the evaluation suite: the demo and window ablations."""
