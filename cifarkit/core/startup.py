"""What every cifarkit entry point runs first, before TensorFlow is imported.

``import cifarkit`` changes nothing in the process that imports it. The processes cifarkit
starts or owns call :func:`start` instead: the ``cifarkit`` command, the chapters' kernels
(the book build starts them with it, :mod:`cifarkit.publish.execute`), the local runner's
worker processes, the Ray runner's tasks, the engine benchmark's one-arm processes and the
test suite.
"""

from __future__ import annotations

import os

#: The code a chapter's kernel runs before its first cell (see :func:`start`).
KERNEL_START = "from cifarkit.core.startup import start; start()"


def start() -> None:
    """Set up this process for TensorFlow; call it before TensorFlow is imported.

    * ``TF_ENABLE_ONEDNN_OPTS=1`` unless it is set already (``0`` opts out): TensorFlow turns
      its oneDNN kernels on by default only on CPUs with AVX-512 VNNI or newer, and on the
      AVX2 machines this project trains on they are much faster (measure it here with
      ``cifarkit bench throughput resnet20``, with and without ``TF_ENABLE_ONEDNN_OPTS=0``).
      Runs stay deterministic with it.
    * TensorFlow's CPU-only start-up notices are filtered from stderr at its first import,
      and its GPUs set to grow their memory (:func:`cifarkit.core.tfquiet.install`).
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    from cifarkit.core import tfquiet

    tfquiet.install()
