"""The embedded benchmark world: procedural hierarchical faces, their factor classifier, the faceness report."""

from hrf.data.faces import FACTORS, HIGH_LEVEL, LOW_LEVEL, combo_ids, faces_tensor, generate_faces

__all__ = ["FACTORS", "HIGH_LEVEL", "LOW_LEVEL", "combo_ids", "faces_tensor", "generate_faces"]
