"""cifarkit: a reproducible CIFAR-10 study.

The package holds all the logic; the Jupyter Book chapters under ``book/`` only call it
and display what it returns. Data flows one way (see ``docs/architecture.md``):
config -> data -> models -> train -> runs -> evaluate/interpret -> plots -> book.
"""

import os

__version__ = "0.1.0"

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512 VNNI or newer;
# on this project's AVX2 machines they double ResNet20 training speed (94 -> 188 img/s,
# measured). Set before TensorFlow is imported; TF_ENABLE_ONEDNN_OPTS=0 opts out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# TensorFlow's CPU-only start-up notices (cuInit, cudart, CPU features) are filtered from
# stderr at its first import; anything else it prints still shows (cifarkit.core.tfquiet).
from cifarkit.core import tfquiet as _tfquiet  # noqa: E402

_tfquiet.install()
