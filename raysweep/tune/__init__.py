"""Sweep stage: ``python -m raysweep.tune experiments/<study>.yaml key=value ...``."""
