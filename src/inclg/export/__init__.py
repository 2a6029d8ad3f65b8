"""Exporting the generator for runtimes without PyTorch (onnx.py: ONNX + an onnxruntime backend)."""
