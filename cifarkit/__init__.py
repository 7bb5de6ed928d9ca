"""cifarkit: a reproducible CIFAR-10 study.

The package holds all the logic; the Jupyter Book chapters under ``book/`` only call it
and display what it returns. Data flows one way (see ``docs/architecture.md``):
config -> data -> models -> train -> runs -> evaluate/interpret -> plots -> book.
"""

__version__ = "0.1.0"
