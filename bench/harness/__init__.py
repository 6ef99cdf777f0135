"""The harness: the suite file resolved into settings (``config``), the plan of cells
(``plan``), starting or resuming a run (``start``), the loop over the cells (``runner``),
each cell in its own process (``isolation``, ``worker``, ``train``), accuracy, the
repetitions of a cell, the results folder and the machine's fingerprint."""
