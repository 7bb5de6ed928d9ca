"""The foundation every other part stands on: errors, paths, atomic writes, the validated
config and reproducibility (seeds, deterministic ops, the environment record).

Nothing here imports TensorFlow at import time, and nothing here imports another part of
cifarkit.
"""
