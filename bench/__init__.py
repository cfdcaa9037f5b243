"""Benchmarks of the whole system against bare I/O: `python -m bench` (see docs/benchmarks.md)."""
