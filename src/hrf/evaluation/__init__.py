"""Evaluation: diversity and quality metrics, feature extractors, the paper's plots, injection and probe runs.

Metric names say which network computed them: "IS (EfficientNet-Lite0, ImageNet)" is not the Inception
Score of the paper, and a Fréchet distance on other features than Inception pool3 is "FD (...)", not FID.
"""

from hrf.evaluation.diversity import combo_coverage, factor_entropy, mixed_radix_codes
from hrf.evaluation.embedders import EMBEDDERS, Embedder, make_embedder
from hrf.evaluation.evaluate import evaluate_images, metrics_markdown
from hrf.evaluation.fid import frechet_distance, kernel_distance, prdc
from hrf.evaluation.inception import inception_score, joint_probs
from hrf.evaluation.vendi import bootstrap_ci, incremental_vendi, vendi_score

__all__ = [
    "EMBEDDERS",
    "Embedder",
    "bootstrap_ci",
    "combo_coverage",
    "evaluate_images",
    "factor_entropy",
    "frechet_distance",
    "incremental_vendi",
    "inception_score",
    "joint_probs",
    "kernel_distance",
    "make_embedder",
    "metrics_markdown",
    "mixed_radix_codes",
    "prdc",
    "vendi_score",
]
