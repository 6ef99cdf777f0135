"""Inference runtimes behind one contract (see runtimes.base)."""
