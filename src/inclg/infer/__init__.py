"""Inference on ordinary photos: `Predictor` (photo + mask -> inpainted photo and 68 landmarks).

inputs.py reads photos and masks; pipeline.py detects, aligns, runs the network and pastes back
(blend.py: the feathered seam); quality.py scores the landmark fit and an automatic mask;
report.py writes the result PNG with its provenance, the before/after and landmark images and the
JSON; batch.py runs a folder resumably (`inclg predict`)."""

from __future__ import annotations

from inclg.infer.inputs import Photo, PredictError, read_mask, read_photo
from inclg.infer.pipeline import AUTO_MASKS, Predictor, PredictResult
from inclg.infer.quality import FitQuality

__all__ = ["AUTO_MASKS", "FitQuality", "Photo", "PredictError", "PredictResult", "Predictor",
           "read_mask", "read_photo"]
