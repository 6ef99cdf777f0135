"""Benchmark scripts that print the figures behind the targets in docs/measured.md; each runs as
``python scripts/NAME.py`` and, at tiny settings, in the test suite. A package only so
that import-linter holds them to the layers: they stand on top, beside cli.py."""
