"""hrf: reinforcement-learning fine-tuning of diffusion models without mode collapse.

DDPO_IS and Hierarchical Reward Fine-tuning (HRF, HRF-D) share one rollout, one PPO loss and one trainer;
they differ only in the start step of each trajectory (see ``hrf.training.schedule``).

Step-index convention used everywhere: ``k`` counts denoising steps already taken, ``k = 0`` is pure
noise and ``k = T`` is the clean image (the paper's §5.3 convention; §4.2's equations use the reverse).

The Python API (importing it loads no torch; each function loads what it needs when called)::

    import hrf
    cfg = hrf.load_config("faces32/compressibility-hrf", {"train.max_epochs": 2})
    run = hrf.train(cfg, "runs/hrf")                     # run.run_dir, run.final, run.summary
    images = hrf.sample(run.final, 16, steps=10)         # (16, C, H, W) in [-1, 1]
    report = hrf.evaluate({"base": "hrf:faces32", "hrf": run.final}, "runs/eval",
                          num=256, steps=10, rewards=["jpeg_compressibility"])
    front = hrf.frontier("hrf:faces32", ["faces_smile"], "runs/frontier", num=20_000)  # the yardstick
    tilted = hrf.tilt("hrf:faces32", "faces_smile", "runs/tilt", gain=0.3, work="runs/frontier")  # toward q_β
"""

from hrf.api import TrainResult, evaluate, frontier, load_config, sample, tilt, train

__version__ = "0.1.0"
__all__ = ["load_config", "train", "sample", "evaluate", "frontier", "tilt", "TrainResult", "__version__"]
