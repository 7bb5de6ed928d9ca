"""What cifarkit does with a GPU, tested on a CPU: the machine is faked through
``cifarkit.core.precision.use_machine`` (a GPU present, absent, or a card whose driver
TensorFlow cannot use) and TensorFlow's own answers where the code asks it directly."""

from __future__ import annotations

from cifarkit.core import precision
from cifarkit.core.precision import Machine, use_machine

A100 = "NVIDIA A100-SXM4-40GB"
PRESENT = Machine(gpus=(A100, A100), cpu_bfloat16=False, gpu_nodes=("/dev/nvidia0", "/dev/nvidia1"))
ABSENT = Machine(cpu_bfloat16=False)
DRIVER_MISSING = Machine(cpu_bfloat16=False, gpu_nodes=("/dev/nvidia0",),
                         reason="TensorFlow has CUDA but found no usable device: check the driver")


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, device, enable: bool) -> None:
        self.calls.append((device.name, enable))


def test_memory_growth_is_set_for_every_gpu(monkeypatch):
    import tensorflow as tf

    cards = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(2)]
    growth = _Recorder()
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: cards if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", growth)
    with use_machine(PRESENT):
        assert precision.share_gpus() == 2
    assert growth.calls == [("/physical_device:GPU:0", True), ("/physical_device:GPU:1", True)]


def test_memory_growth_is_not_asked_for_on_a_cpu(monkeypatch):
    import tensorflow as tf

    def never(kind=None):
        raise AssertionError("TensorFlow was asked for GPUs on a machine without one")

    growth = _Recorder()
    monkeypatch.setattr(tf.config, "list_physical_devices", never)
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", growth)
    for machine in (ABSENT, DRIVER_MISSING):
        with use_machine(machine):
            assert precision.share_gpus() == 0
    assert growth.calls == []


def test_a_gpu_initialised_before_cifarkit_is_left_as_it_is_with_a_warning(monkeypatch, caplog):
    import tensorflow as tf

    def initialised(device, enable):
        raise RuntimeError("Physical devices cannot be modified after being initialized")

    monkeypatch.setattr(tf.config, "list_physical_devices",
                        lambda kind=None: [tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")])
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", initialised)
    with use_machine(PRESENT), caplog.at_level("WARNING"):
        assert precision.share_gpus() == 0
    assert "import cifarkit before using TensorFlow" in caplog.text


