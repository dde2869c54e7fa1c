"""A learned reward on hrf's procedural faces: how surely the factor classifier sees a smile."""

from __future__ import annotations

import torch

from hrf.rewards.registry import register_reward


@register_reward("faces_smile")
def faces_smile():
    """Reward = P(mouth = smile) under the shipped face classifier, in [0, 1]."""
    from hrf.data.classifier import load_face_classifier
    from hrf.data.faces import FACTORS

    classifier = load_face_classifier()
    smile = FACTORS["mouth"].index("smile")

    def fn(images: torch.Tensor):
        probs = classifier.probs(images)
        mouth = probs["mouth"]
        return mouth[:, smile].float().cpu(), {"mouth": mouth.argmax(-1).cpu().numpy()}

    return fn
