"""Downstream scoring of a pre-trained checkpoint: datasets (:mod:`raysweep.score.datasets`)."""
