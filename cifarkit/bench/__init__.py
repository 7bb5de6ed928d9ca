"""Benchmarks that print figures and keep them under ``artifacts/bench/``.

* :mod:`~cifarkit.bench.throughput` — training images/s, model alone vs the real pipeline;
* :mod:`~cifarkit.bench.time_to_accuracy` — wall time to a target accuracy over seeds;
* :mod:`~cifarkit.bench.gradcam` — Grad-CAM maps per second.
"""
