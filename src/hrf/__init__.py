"""hrf: reinforcement-learning fine-tuning of diffusion models without mode collapse.

DDPO_IS and Hierarchical Reward Fine-tuning (HRF, HRF-D) share one rollout, one PPO loss and one trainer;
they differ only in the start step of each trajectory (see ``hrf.training.schedule``).

Step-index convention used everywhere: ``k`` counts denoising steps already taken, ``k = 0`` is pure
noise and ``k = T`` is the clean image (the paper's §5.3 convention; §4.2's equations use the reverse).
"""

__version__ = "0.1.0"
