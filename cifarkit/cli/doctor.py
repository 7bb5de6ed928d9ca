"""The ``doctor`` subcommand: what TensorFlow sees here (devices, CUDA, bfloat16, threads, precision)."""

from __future__ import annotations

import argparse


def cmd_doctor(args: argparse.Namespace) -> int:
    from cifarkit.core import doctor

    print(doctor.render(doctor.report()))
    return 0
