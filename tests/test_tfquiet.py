"""TensorFlow's CPU-only start-up notices are filtered from stderr; everything else still shows."""

from __future__ import annotations

import os
import subprocess
import sys

from cifarkit.core import tfquiet
from cifarkit.core.tfquiet import filtered_stderr, without_startup_notices

NOTICES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796114234.080265   10421 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.\n"
    "E0000 00:00:1796114240.326492   10421 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
    "error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
)


def test_only_the_known_notices_are_removed():
    real = "E0000 00:00:1.0 1 op_kernel.cc:1] OOM when allocating tensor\nTraceback (most recent call last):\n"
    assert without_startup_notices(NOTICES) == ""
    assert without_startup_notices(NOTICES + real) == real
    assert without_startup_notices("a cuInit line in prose: failed call to cuInit\n") != ""


def test_filtered_stderr_passes_other_lines_through_in_order(capfd):
    with filtered_stderr():
        os.write(2, NOTICES.encode())
        os.write(2, b"first real line\n")
        os.write(2, NOTICES.encode())
        os.write(2, b"second real line\n")
    err = capfd.readouterr().err
    assert err == "first real line\nsecond real line\n"


def test_importing_cifarkit_then_tensorflow_prints_no_startup_lines():
    code = ("import cifarkit, keras, tensorflow as tf, sys\n"
            "tf.constant(1) + 1\n"
            "sys.stderr.write('after\\n')\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CIFARKIT_TF_LOGS", "TF_CPP_MIN_LOG_LEVEL")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "after\n", result.stderr


def test_without_tensorflow_the_hook_answers_not_found(monkeypatch):
    """A PyTorch-only tool that imports cifarkit's standard-library helpers asks whether
    TensorFlow exists (``importlib.util.find_spec``): the hook must say "no", not raise."""
    def missing(name):
        raise ModuleNotFoundError(f"No module named {name!r}")

    finder = tfquiet.QuietTensorFlowImport()
    monkeypatch.setattr(tfquiet.importlib, "import_module", missing)
    assert finder.find_spec("tensorflow") is None
    monkeypatch.setattr(tfquiet.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(tfquiet.sys, "meta_path", [])
    monkeypatch.delitem(tfquiet.sys.modules, "tensorflow", raising=False)
    tfquiet.install()
    assert tfquiet.sys.meta_path == []  # nothing to quieten
