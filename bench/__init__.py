"""Benchmarks: scripts that print figures (``python bench/run.py``), never timed asserts."""
