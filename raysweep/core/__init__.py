"""The training core pre-training and scoring share: where a loop runs (``context``), the one
checkpoint format and the store of pre-trained models (``checkpoint``), the learning-rate schedule
and per-step randomness (``schedule``), the batched augmentation (``augment``) and model inputs
(``inputs``)."""
