"""Inference on ordinary photos: `Predictor` (photo + mask -> inpainted photo and 68 landmarks).

pipeline.py runs prepare (detect, align, map the mask) -> run (the network) -> postprocess
(paste back); region.py maps the mask between photo and crop (blend.py: the feathered seam);
quality.py scores the landmark fit and an automatic mask; report.py writes the result PNG with its
provenance, the before/after, landmark and measurement images and the JSON; batch.py runs a folder
resumably (`inclg predict`). Photos and masks are read by `inclg.io.images`."""

from __future__ import annotations

from inclg.errors import PredictError
from inclg.infer.pipeline import AUTO_MASKS, Predictor, PredictResult
from inclg.infer.quality import FitQuality
from inclg.io.images import Photo, read_mask, read_photo

__all__ = ["AUTO_MASKS", "FitQuality", "Photo", "PredictError", "PredictResult", "Predictor",
           "read_mask", "read_photo"]
