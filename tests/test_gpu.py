"""What cifarkit does with a GPU, tested on a CPU: the machine is faked through
``cifarkit.core.precision.use_machine`` (a GPU present, absent, or a card whose driver
TensorFlow cannot use) and TensorFlow's own answers where the code asks it directly."""

from __future__ import annotations

import pytest

from cifarkit.cli import main
from cifarkit.core import doctor, precision
from cifarkit.core.precision import Machine, use_machine

A100 = "NVIDIA A100-SXM4-40GB"
PRESENT = Machine(gpus=(A100, A100), cpu_bfloat16=False, gpu_nodes=("/dev/nvidia0", "/dev/nvidia1"))
ABSENT = Machine(cpu_bfloat16=False)
DRIVER_MISSING = Machine(
    cpu_bfloat16=False,
    gpu_nodes=("/dev/nvidia0",),
    reason="TensorFlow has its CUDA libraries but found no usable device: check the driver",
)
CPU_TF = doctor.TensorFlowFacts(
    "2.21.0",
    "3.15.0",
    ("CPU:0",),
    {"is_cuda_build": True, "cuda_version": "12.5.1", "cudnn_version": "9"},
)
GPU_TF = doctor.TensorFlowFacts("2.21.0", "3.15.0", ("CPU:0", "GPU:0", "GPU:1"), CPU_TF.build, 4, 2)


def _lines(on: Machine, tf: doctor.TensorFlowFacts) -> dict[str, str]:
    with use_machine(on):
        return dict(doctor.report(tf=tf))


def test_doctor_with_a_gpu_names_it_and_every_profile_computes_in_float16():
    lines = _lines(PRESENT, GPU_TF)
    assert lines["devices"] == "CPU:0, GPU:0, GPU:1"
    assert lines["gpu"].startswith(f"{A100}, {A100};")
    assert lines["tensorflow"] == "2.21.0 (Keras 3.15.0), built for CUDA 12.5.1 and cuDNN 9"
    assert lines["threads"].startswith("intra-op 4, inter-op 2")
    assert lines["precision full"] == "float16 -> float16 (mixed, on a GPU)"
    assert lines["precision smoke"] == lines["precision cpu"] == "auto -> float16 (mixed, on a GPU)"


def test_doctor_without_a_gpu_says_so_and_that_full_is_refused_with_the_fix():
    lines = _lines(ABSENT, CPU_TF)
    assert lines["gpu"] == "none (no /dev/nvidia* device file): training runs on the CPU"
    assert lines["precision cpu"] == "auto -> float32"
    assert lines["precision full"].startswith("float16: refused here")
    assert "--set train.precision=float32" in lines["precision full"]
    assert "native bfloat16: no (neither avx512_bf16 nor amx_bf16" in lines["cpu"]
    assert list(lines)[-3:] == ["precision smoke", "precision cpu", "precision full"]


def test_doctor_with_a_card_tensorflow_cannot_use_says_why():
    lines = _lines(DRIVER_MISSING, CPU_TF)
    assert lines["gpu"] == f"none usable although /dev/nvidia0 exists: {DRIVER_MISSING.reason}"
    assert lines["precision full"].startswith("float16: refused here")
    nvidia_smi_only = Machine(
        reason="nvidia-smi is installed but there is no /dev/nvidia* device file"
    )
    assert (
        _lines(nvidia_smi_only, CPU_TF)["gpu"]
        == f"none usable although nvidia-smi exists: {nvidia_smi_only.reason}"
    )


def test_why_tensorflow_lists_no_gpu_names_the_missing_cuda_wheels_first(monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(tf.test, "is_built_with_cuda", lambda: True)  # as the Linux wheel is
    monkeypatch.setattr(precision, "cuda_wheels", lambda: {})
    assert precision._tensorflow_gpus() == (
        (),
        "TensorFlow's CUDA libraries are not installed (nvidia-cuda-runtime-cu12, nvidia-cublas-cu12, "
        "nvidia-cudnn-cu12); install the GPU extra: make venv GPU=1",
    )
    monkeypatch.setattr(
        precision, "cuda_wheels", lambda: dict.fromkeys(precision.CUDA_WHEELS, "12")
    )
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert "check the driver" in precision._tensorflow_gpus()[1]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert "CUDA_VISIBLE_DEVICES=''" in precision._tensorflow_gpus()[1]


def test_cifarkit_doctor_on_this_machine(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    labels = [line.split("  ")[0] for line in out.splitlines()]
    assert labels[:6] == ["tensorflow", "cuda libraries", "devices", "gpu", "cpu", "threads"]
    assert {"precision smoke", "precision cpu", "precision full"} <= {
        label.strip() for label in labels
    }
    assert "CPU:0" in out


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, device, enable: bool) -> None:
        self.calls.append((device.name, enable))


def test_memory_growth_is_set_for_every_gpu(monkeypatch):
    import tensorflow as tf

    cards = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(2)]
    growth = _Recorder()
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda kind=None: cards if kind == "GPU" else []
    )
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

    monkeypatch.setattr(
        tf.config,
        "list_physical_devices",
        lambda kind=None: [tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")],
    )
    monkeypatch.setattr(tf.config.experimental, "set_memory_growth", initialised)
    with use_machine(PRESENT), caplog.at_level("WARNING"):
        assert precision.share_gpus() == 0
    assert "import cifarkit before using TensorFlow" in caplog.text


@pytest.mark.parametrize("machine", [ABSENT, DRIVER_MISSING])
def test_float16_is_refused_with_the_reason_when_tensorflow_sees_no_gpu(machine):
    from cifarkit.core.errors import CifarkitError

    with use_machine(machine), pytest.raises(CifarkitError, match="needs a GPU") as error:
        precision.require_device("float16")
    assert (machine.reason or "TensorFlow sees none") in str(error.value)


# --------------------------------------------------------------------------- precision carried over


def _compiled(policy: str, built: bool = False):
    """A tiny compiled model under ``policy``; ``built``: its optimizer too, as after training."""
    import keras

    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2, dtype="float32")],
            name="tiny",
        )
        model.compile(optimizer="sgd", loss="mse")
        if built:
            model.optimizer.build(model.trainable_variables)
        return model
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    ("began", "resumed"),
    [
        ("mixed_bfloat16", "float32"),
        ("float32", "mixed_float16"),
        ("mixed_float16", "mixed_bfloat16"),
    ],
)
def test_a_checkpoint_resumed_under_another_precision_names_both(tmp_path, began, resumed):
    from cifarkit.core.errors import CifarkitError
    from cifarkit.training.checkpoint import CheckpointManager

    manager = CheckpointManager(tmp_path / "checkpoint")
    manager.save(
        _compiled(began, built=True), 1, {"history": [{"loss": 1.0}], "train_seconds": 1.0}
    )
    was, now = began.removeprefix("mixed_"), resumed.removeprefix("mixed_")
    expected = (
        f"was written under precision {was} (Keras policy {began}) and this config computes in {now} "
        f"({resumed}); a run resumes only in the precision it began in: set train.precision: {was} to "
        f"resume it, or delete {tmp_path / 'checkpoint'} to restart it in {now}"
    )
    with pytest.raises(CifarkitError) as error:
        manager.restore(_compiled(resumed))
    assert expected in str(error.value) and "architecture" not in str(error.value)
    with pytest.raises(
        CifarkitError, match="was written under precision"
    ):  # before anything is written
        manager.latest(policy=resumed)
    assert manager.restore(_compiled(began))["epoch"] == 1  # the same precision resumes


def test_a_checkpoint_that_does_not_name_its_precision_still_resumes(tmp_path):
    import json

    from cifarkit.training.checkpoint import CheckpointManager

    manager = CheckpointManager(tmp_path / "checkpoint")
    manager.save(_compiled("float32", built=True), 2, {"history": [], "train_seconds": 1.0})
    pointer = json.loads(manager.pointer.read_text())
    assert pointer["policy"] == "float32"
    del pointer["policy"]
    manager.pointer.write_text(json.dumps(pointer))
    assert manager.restore(_compiled("float32"))["epoch"] == 2


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_a_mixed_precision_model_is_rebuilt_to_compute_in_float32_with_its_weights(policy):
    import keras
    import numpy as np

    from cifarkit.core.config import load_config
    from cifarkit.models import build_model, float32_model, predict_logits

    cfg = load_config("resnet20", "smoke", {"train.precision": "float32"}).model
    keras.mixed_precision.set_global_policy(policy)
    try:
        mixed = build_model(cfg)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    plain = build_model(cfg)
    plain.set_weights(mixed.get_weights())
    assert float32_model(plain) is plain  # already float32: nothing rebuilt
    rebuilt = float32_model(mixed)
    assert {layer.dtype_policy.name for layer in rebuilt.layers} == {"float32"}
    x = np.random.default_rng(0).integers(0, 256, (16, 32, 32, 3)).astype(np.uint8)
    np.testing.assert_array_equal(predict_logits(rebuilt, x), predict_logits(plain, x))
    assert (
        np.max(np.abs(predict_logits(mixed, x) - predict_logits(plain, x))) > 1e-3
    )  # what it replaces


# --------------------------------------------------------------------------- augmentation on the GPU

AUGMENTS = {
    "crop, flip and cutout": dict(crop_padding=4, flip=True, cutout=8),
    "alternating flip": dict(crop_padding=2, flip=True, alternating_flip=True),
    "none": dict(enabled=False),
}


@pytest.mark.parametrize("augment", list(AUGMENTS))
def test_batches_augmented_on_the_device_are_the_pipelines_batches(augment):
    """Same seeds, same batches: every batch of three epochs (a resumed run's, from epoch 1)
    built on the device from indices and seeds equals the tf.data pipeline's, labels and
    sample weights included. The device is this CPU; the ops are the same."""
    import numpy as np

    from cifarkit.core.config import AugmentConfig
    from cifarkit.data.pipeline import device_batches, train_dataset

    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (50, 32, 32, 3)).astype(np.uint8)
    y, weights = np.arange(50) % 10, rng.random(50).astype(np.float32)
    aug = AugmentConfig(mode="batch", **AUGMENTS[augment])
    args = dict(
        num_classes=10,
        batch_size=16,
        seed=5,
        start_epoch=1,
        epochs=4,
        aug=aug,
        sample_weights=weights,
    )
    ids, feed = device_batches(x, y, device="/CPU:0", **args)
    pairs = list(zip(train_dataset(x, y, **args), ids, strict=True))
    assert len(pairs) == 3 * 4
    for (images, labels, w), (batch, labels_d, w_d) in pairs:
        on_device = feed.batch(batch)
        assert images.dtype.name == "uint8" and on_device.dtype.name == "float32"
        np.testing.assert_array_equal(on_device.numpy(), images.numpy().astype(np.float32))
        np.testing.assert_array_equal(labels_d.numpy(), labels.numpy())
        np.testing.assert_array_equal(w_d.numpy(), w.numpy())


def test_the_device_augmentation_has_gpu_kernels_for_the_images_dtypes():
    """What would make a GPU run fall back to its CPU for every batch: an op on the images
    without a GPU kernel for their dtype (a plain tensor's gather and the reflect pad have no
    uint8 one). Every op of DeviceFeed.batch that touches the image batch is checked against
    TensorFlow's kernel registry (this wheel is a CUDA build: its GPU kernels are listed)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework import kernels

    from cifarkit.core.config import AugmentConfig
    from cifarkit.data.pipeline import device_batches

    x = np.zeros((40, 32, 32, 3), np.uint8)
    aug = AugmentConfig(mode="batch", crop_padding=4, flip=True, cutout=8)
    ids, feed = device_batches(
        x,
        np.zeros(40, int),
        num_classes=10,
        batch_size=8,
        seed=0,
        start_epoch=0,
        epochs=1,
        aug=aug,
        device="/CPU:0",
    )
    spec = ids.element_spec[0]
    graph = tf.function(feed.batch).get_concrete_function(spec).graph

    def has_gpu_kernel(op) -> bool:
        for kernel in kernels.get_registered_kernels_for_op(op.type).kernel:
            if kernel.device_type == "GPU" and all(
                op.get_attr(c.name) in c.allowed_values.list.type for c in kernel.constraint
            ):
                return True
        return False

    image_ops = [
        op
        for op in graph.get_operations()
        if op.type == "ResourceGather" or any(out.shape.rank == 4 for out in op.outputs)
    ]
    assert {"ResourceGather", "Cast", "MirrorPad", "GatherV2", "ReverseV2", "SelectV2", "Mul"} <= {
        op.type for op in image_ops
    }
    missing = sorted(
        {
            f"{op.type}({op.outputs[0].dtype.name if op.outputs else ''})"
            for op in image_ops
            if not has_gpu_kernel(op)
        }
    )
    assert missing == []


@pytest.mark.slow
def test_training_fed_from_the_device_ends_with_the_weights_of_the_pipelines(tmp_path):
    """With a GPU (faked; TensorFlow places the 'GPU' variable on this CPU), batch augmentation
    runs inside the training step; the run ends exactly where the tf.data run does."""
    import numpy as np
    from train_fixtures import tiny_experiment, tiny_image_tree

    from cifarkit.core.config import load_config
    from cifarkit.data import splits_from_config
    from cifarkit.training import fit

    data = tiny_image_tree(tmp_path / "data", train_per_class=8, test_per_class=2)
    extra = (
        "  precision: float32\n  augment: {enabled: true, mode: batch, crop_padding: 2, flip: true, "
        "alternating_flip: true, cutout: 4}\n"
    )
    cfg = load_config(tiny_experiment(tmp_path, data, epochs=2, extra=extra), None)
    splits = splits_from_config(cfg.data)
    fed = []
    original = fit.feed_from_device

    def spy(model, feed):
        fed.append(feed)
        original(model, feed)

    with use_machine(PRESENT), pytest.MonkeyPatch.context() as patch:
        patch.setattr(fit, "feed_from_device", spy)
        assert fit.augment_on_gpu(cfg.train)
        on_device = fit.train_run(cfg, 0, tmp_path / "device", splits)
    with use_machine(ABSENT):
        assert not fit.augment_on_gpu(cfg.train)
        in_pipeline = fit.train_run(cfg, 0, tmp_path / "pipeline", splits)
    assert len(fed) == 1
    for a, b in zip(on_device.model.get_weights(), in_pipeline.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(on_device.test_logits, in_pipeline.test_logits)


def test_a_float16_run_is_refused_before_its_data_is_loaded_or_anything_is_written(
    tmp_path, monkeypatch
):
    from train_fixtures import tiny_experiment, tiny_image_tree

    from cifarkit.core.config import load_config
    from cifarkit.core.errors import CifarkitError
    from cifarkit.runs import get_or_train, store
    from cifarkit.runs.run import runs_root

    data = tiny_image_tree(tmp_path / "data", train_per_class=2, test_per_class=1)
    cfg = load_config(tiny_experiment(tmp_path, data, extra="  precision: float16\n"), None)
    monkeypatch.setattr(
        "cifarkit.data.splits_from_config", lambda *a, **k: pytest.fail("the data was loaded")
    )
    monkeypatch.setattr(store, "_train_into", lambda *a, **k: pytest.fail("training started"))
    with use_machine(DRIVER_MISSING), pytest.raises(CifarkitError, match="needs a GPU") as error:
        get_or_train(cfg, 0)
    assert DRIVER_MISSING.reason in str(error.value)
    assert not runs_root().exists() or not any(runs_root().iterdir())


def test_the_gpu_extra_pins_every_cuda_wheel_tensorflow_asks_for_as_its_lock_does():
    """pyproject's gpu extra and requirements-gpu.lock name the same exact versions, and they
    cover (within its ranges) every requirement of the installed TensorFlow's and-cuda extra."""
    import importlib.metadata
    import tomllib

    from packaging.requirements import Requirement

    from cifarkit.core.paths import project_root

    root = project_root()
    extra = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["gpu"]
    lock = [
        line
        for line in (root / "requirements-gpu.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert sorted(extra) == sorted(lock)
    pins = {}
    for text in lock:
        requirement = Requirement(text)
        (spec,) = requirement.specifier  # exactly one ==
        assert spec.operator == "==", text
        pins[requirement.name] = spec.version
    assert pins.pop("tensorflow") == importlib.metadata.version("tensorflow")
    wanted = [
        Requirement(r)
        for r in importlib.metadata.requires("tensorflow")
        if Requirement(r).marker
        and Requirement(r).marker.evaluate({"extra": "and-cuda"})
        and not Requirement(r).marker.evaluate({"extra": ""})
    ]
    assert wanted, "the installed TensorFlow has no and-cuda extra"
    for requirement in wanted:
        assert requirement.name in pins, f"{requirement.name} is not pinned"
        assert requirement.specifier.contains(pins[requirement.name]), (
            requirement,
            pins[requirement.name],
        )
