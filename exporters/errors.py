"""Errors of the exporters that are not the user's fault."""


class ExportError(RuntimeError):
    """The exporter could not produce a correct ONNX file: a bug, not bad user input."""
