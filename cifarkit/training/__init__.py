"""Fit one (config, seed) into a folder: the recipe (optimizer, schedule, loss), callbacks,
checkpoints that resume exactly, fine-tuning mechanics and the LR finder.

Training knows no run store: :func:`cifarkit.training.fit.train_run` is given a folder and
the splits; :mod:`cifarkit.runs` decides which folder and records the outcome.
"""
