"""Benchmarks: full-scale synthetic data generator and timing harness (run with ``python -m``)."""
