"""Performance benchmarks: ``python -m bench --help``. Run by hand; figures go to docs/performance.md."""
