"""TensorRT: engines built from ONNX (``build``) through the Python API or trtexec, run
through the Python API with CUDA (``session``, ``cuda``) or trtexec (``trtexec_driver``,
``trtexec_session``), the precision an engine runs in (``inspector``), and what the NVIDIA
GPU stack offers here (``stack``). ``runtime`` registers it as ``tensorrt``.

Importing this package imports neither TensorRT nor CUDA."""
