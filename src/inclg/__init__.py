"""INCLG: inpainting for non-cleft lip generation with a multi-task (image + 68 landmarks) network."""

__version__ = "0.1.0"
