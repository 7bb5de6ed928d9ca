"""cifarkit: a reproducible CIFAR-10 study.

The package holds all the logic; the Jupyter Book chapters under ``book/`` only call it
and display what it returns. Data flows one way (see ``docs/architecture.md``):
config -> data -> models -> train -> runs -> evaluate/interpret -> plots -> book.

Importing the package changes nothing in the importing process: the entry points (the
``cifarkit`` command, the chapters' kernels, the runners' worker processes) first call
:func:`cifarkit.core.startup.start`, which switches TensorFlow's oneDNN kernels on and
filters its start-up notices.
"""

__version__ = "0.1.0"
