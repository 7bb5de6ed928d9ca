"""TensorFlow's CPU-only start-up notices are filtered from stderr; everything else still shows."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cifarkit.core import precision, tfquiet
from cifarkit.core.tfquiet import filtered_stderr, without_startup_notices

NOTICES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796114234.080265   10421 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.\n"
    "E0000 00:00:1796114240.326492   10421 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
    "error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
)


GPU_LINES = (
    "I0000 00:00:1796114234.080265   10421 cudart_stub.cc:31] Could not find cuda drivers on your "
    "machine, GPU will not be used.\n"
    "E0000 00:00:1796114240.326492   10421 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA "
    "error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
    "W0000 00:00:1796114240.412345   10421 gpu_device.cc:2344] Cannot dlopen some GPU libraries. Please make "
    "sure the missing libraries mentioned above are installed properly if you would like to use GPU.\n"
    "Skipping registering GPU devices...\n"
)


@pytest.fixture
def no_card(monkeypatch):
    """The device-node check answers: no NVIDIA device file here."""
    monkeypatch.setattr(precision, "gpu_device_nodes", lambda: ())


@pytest.fixture
def card(monkeypatch):
    """The device-node check answers: /dev/nvidia0 exists (a card is installed)."""
    monkeypatch.setattr(precision, "gpu_device_nodes", lambda: ("/dev/nvidia0",))


def test_only_the_known_notices_are_removed(no_card):
    real = "E0000 00:00:1.0 1 op_kernel.cc:1] OOM when allocating tensor\nTraceback (most recent call last):\n"
    assert without_startup_notices(NOTICES) == ""
    assert without_startup_notices(NOTICES + real) == real
    assert without_startup_notices("a cuInit line in prose: failed call to cuInit\n") != ""


def test_gpu_and_driver_lines_are_filtered_without_a_card(no_card, capfd):
    with filtered_stderr():
        os.write(2, GPU_LINES.encode())
        os.write(2, b"real line\n")
    assert capfd.readouterr().err == "real line\n"


def test_gpu_and_driver_lines_are_kept_where_a_card_is_installed(card, capfd):
    """With /dev/nvidia0 present a CPU fallback is a surprise, and these lines say why."""
    with filtered_stderr():
        os.write(2, NOTICES.encode())
        os.write(2, GPU_LINES.encode())
    err = capfd.readouterr().err
    assert "WARNING: All log messages before absl" not in err  # the CPU notices still go
    kept = GPU_LINES + "".join(
        line for line in NOTICES.splitlines(keepends=True) if "cuda" in line.lower()
    )
    assert sorted(err.splitlines()) == sorted(kept.splitlines())
    assert "Skipping registering GPU devices..." in err and "failed call to cuInit" in err


def test_the_first_tensorflow_import_shares_the_gpus_with_or_without_the_filter(monkeypatch):
    """The hook calls share_gpus right after TensorFlow's import, before anything can
    initialise a GPU; CIFARKIT_TF_LOGS=1 turns off the filter, not the sharing."""
    calls = []

    class FakeTensorFlow:
        class config:  # noqa: N801 - the attribute path tf.config.list_physical_devices
            @staticmethod
            def list_physical_devices():
                calls.append("list")
                return []

    monkeypatch.setattr(tfquiet.importlib, "import_module", lambda name: FakeTensorFlow)
    monkeypatch.setattr(tfquiet, "_share_gpus", lambda: calls.append("share"))
    for quiet in (True, False):
        calls.clear()
        monkeypatch.setattr(tfquiet.sys, "meta_path", [])
        finder = tfquiet.QuietTensorFlowImport(quiet=quiet)
        finder.find_spec("tensorflow")
        assert calls == ["list", "share"]


def test_filtered_stderr_passes_other_lines_through_in_order(capfd):
    with filtered_stderr():
        os.write(2, NOTICES.encode())
        os.write(2, b"first real line\n")
        os.write(2, NOTICES.encode())
        os.write(2, b"second real line\n")
    err = capfd.readouterr().err
    assert err == "first real line\nsecond real line\n"


@pytest.mark.slow  # a fresh Python imports TensorFlow and Keras: tens of seconds on a busy host
def test_an_entry_point_started_then_tensorflow_prints_no_startup_lines():
    code = (
        "from cifarkit.core.startup import start\n"
        "start()\n"
        "import keras, tensorflow as tf, sys\n"
        "tf.constant(1) + 1\n"
        "sys.stderr.write('after\\n')\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("CIFARKIT_TF_LOGS", "TF_CPP_MIN_LOG_LEVEL")
    }
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "after\n", result.stderr


def test_importing_cifarkit_alone_leaves_the_import_system_and_the_environment_alone():
    """Only the entry points (the command, the chapters' kernels, the runners' workers) start
    TensorFlow's set-up; a program that imports cifarkit keeps its own."""
    code = (
        "import os, sys\n"
        "before = (list(sys.meta_path), dict(os.environ))\n"
        "import cifarkit, cifarkit.core.config, cifarkit.core.tfquiet, cifarkit.core.startup, cifarkit.runs\n"
        "import cifarkit.studies.plan, cifarkit.publish.build\n"
        "assert [type(f).__name__ for f in sys.meta_path] == [type(f).__name__ for f in before[0]]\n"
        "assert 'TF_ENABLE_ONEDNN_OPTS' not in os.environ\n"
        "assert (list(sys.meta_path), dict(os.environ)) == before\n"
        "from cifarkit.core.startup import start\n"
        "start()\n"
        "assert type(sys.meta_path[0]).__name__ == 'QuietTensorFlowImport'\n"
        "assert os.environ['TF_ENABLE_ONEDNN_OPTS'] == '1'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr


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
