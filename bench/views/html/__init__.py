"""The HTML reports: a run's ``report.html``, machines side by side (``report --html``)
and the regression gate (``compare --html``), each one self-contained file."""
