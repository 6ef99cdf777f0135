"""Reference models, user models and their export to ONNX."""
