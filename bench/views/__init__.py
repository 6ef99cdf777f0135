"""What is shown of results: tables and Markdown (``report``), low-precision speedups,
the roofline, machines side by side, published figures beside ours, the reference
models and runtimes (``catalog``), and the HTML pages (``html``)."""
