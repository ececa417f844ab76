"""Benchmarks: ``python -m raysweep.bench {render} [--json]``. Each measures in one run and
reports medians over repeats (these machines are noisy)."""
