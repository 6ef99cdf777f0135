"""Microbenchmarks of the machine itself (``python cli.py hw``): dense matrix-multiply
throughput per dtype, STREAM memory bandwidth and host↔device copies, per device.

``records`` holds the result type and the FLOP/byte accounting (no torch); ``clock``
times device work (CUDA events, host clock); ``matmul`` and ``stream`` (STREAM and pinned
copies) measure with torch; ``suite`` runs them and writes a results directory; ``table``
prints them. The ``hw`` verb is bench.commands.hw.
"""
