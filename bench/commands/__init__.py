"""The command line's verbs, one module each: ``run`` (here), ``edge`` (``run --host``),
``export``, ``compare`` (``compare`` and ``baseline``) and ``hw``. Each takes what
``cli.py`` parsed and returns an exit code."""
