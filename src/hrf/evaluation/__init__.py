"""Evaluation: diversity and quality metrics, feature extractors, the paper's plots, injection, the phase transition.

:func:`evaluate_models` is the one pipeline (sample from shared noise, cached, then every metric);
:func:`evaluate_images` computes the metrics of images already in hand.

Metric names say which network computed them: "IS (EfficientNet-Lite0, ImageNet)" is not the Inception
Score of the paper, and a Fréchet distance on other features than Inception pool3 is "FD (...)", not FID.
"""

from hrf.data.faces import mixed_radix_codes
from hrf.evaluation.diversity import combo_coverage, factor_entropy
from hrf.evaluation.embedders import EMBEDDERS, Embedder, make_embedder
from hrf.evaluation.fid import frechet_distance, kernel_distance, prdc
from hrf.evaluation.inception import inception_score, joint_probs
from hrf.evaluation.metrics import evaluate_images
from hrf.evaluation.pipeline import evaluate_models, metric_values
from hrf.evaluation.report import metrics_markdown
from hrf.evaluation.vendi import bootstrap_ci, incremental_vendi, vendi_bootstrap_ci, vendi_score

__all__ = [
    "EMBEDDERS",
    "Embedder",
    "bootstrap_ci",
    "combo_coverage",
    "evaluate_images",
    "evaluate_models",
    "factor_entropy",
    "frechet_distance",
    "inception_score",
    "incremental_vendi",
    "joint_probs",
    "kernel_distance",
    "make_embedder",
    "metric_values",
    "metrics_markdown",
    "mixed_radix_codes",
    "prdc",
    "vendi_bootstrap_ci",
    "vendi_score",
]
