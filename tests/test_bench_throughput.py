"""The throughput results the fast-training chapter reads: loading and the framework comparison."""

import json

import pandas as pd
import pytest

from cifarkit.bench.throughput import Throughput, framework_comparison, load_throughputs

EPYC = {
    "cpu": "AMD EPYC",
    "cpu_isa": "avx512f",
    "cpu_count": 2,
    "recorded_at": "2026-11-29T07:40:00+00:00",
}


def _write(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))


def ours(img_s=132.0, env=EPYC):
    return Throughput(
        "airbench", 1024, 40, img_s, 134.0, 21000.0, "batch", "cpu", "keras 3.15.0", env, "airbench"
    )


def test_a_kept_measurement_is_named_by_model_profile_mode_and_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path))
    assert (
        ours().default_path()
        == tmp_path.resolve() / "bench" / "throughput-airbench-cpu-batch-b1024.json"
    )
    fast = Throughput(
        "resnet20", 128, 40, 211.0, 211.0, None, "batch", "cpu", "keras", {}, "resnet20_fast"
    )
    assert (
        fast.default_path().name == "throughput-resnet20_fast-cpu-batch-b128.json"
    )  # not resnet20's file


def test_load_throughputs_reads_ours_and_the_reference_and_skips_other_files(tmp_path, caplog):
    _write(tmp_path, "throughput-airbench-cpu-batch-b1024.json", ours().as_dict())
    _write(
        tmp_path,
        "throughput-airbench94-torch.json",
        {
            "model": "airbench94",
            "framework": "torch 2.13.0+cpu",
            "batch_size": 1024,
            "steps": 40,
            "synthetic_img_s": 112.0,
            "environment": EPYC,
        },
    )
    (tmp_path / "throughput-broken.json").write_text("{not json")
    (tmp_path / "time-to-accuracy-x.json").write_text("{}")
    table = load_throughputs(tmp_path)
    assert list(table["model"]) == ["airbench", "airbench94"]
    assert list(table["experiment"]) == ["airbench", "airbench94"]
    assert table.loc[0, "ratio"] == 134.0 / 132.0
    assert pd.isna(table.loc[1, "real pipeline (img/s)"])
    assert "throughput-broken.json" in caplog.text
    sentence = framework_comparison(table)
    assert "132 img/s" in sentence and "112 img/s" in sentence and "1.18×" in sentence
    assert "about 74 min" in sentence  # 9.9 epochs × 50,000 images at 112 img/s


@pytest.mark.parametrize(
    "other, named",
    [
        ({"cpu": "Intel Xeon"}, "Intel Xeon with avx512f"),
        ({"cpu_isa": "avx2"}, "AMD EPYC with avx2"),  # same CPU name, another vector unit
    ],
)
def test_framework_comparison_refuses_figures_from_different_machines(tmp_path, other, named):
    _write(tmp_path, "throughput-airbench-cpu-batch-b1024.json", ours().as_dict())
    _write(
        tmp_path,
        "throughput-airbench94-torch.json",
        {
            "model": "airbench94",
            "framework": "torch",
            "batch_size": 1024,
            "synthetic_img_s": 150.0,
            "environment": {**EPYC, **other},
        },
    )
    sentence = framework_comparison(load_throughputs(tmp_path))
    assert "different machines" in sentence and "×" not in sentence
    assert "AMD EPYC with avx512f, 2 cores" in sentence and named in sentence


def test_a_bfloat16_measurement_is_kept_apart_and_not_compared_with_float32_airbench94(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("CIFARKIT_ARTIFACTS", str(tmp_path))
    bf16 = Throughput(
        "airbench",
        1024,
        40,
        400.0,
        401.0,
        21000.0,
        "batch",
        "cpu",
        "keras 3.15.0",
        EPYC,
        "airbench",
        precision="mixed_bfloat16",
    )
    assert bf16.default_path().name == "throughput-airbench-cpu-batch-b1024-bf16.json"
    _write(tmp_path, bf16.default_path().name, bf16.as_dict())
    _write(
        tmp_path,
        "throughput-airbench94-torch.json",
        {
            "model": "airbench94",
            "framework": "torch",
            "batch_size": 1024,
            "synthetic_img_s": 236.0,
            "environment": EPYC,
        },
    )
    table = load_throughputs(tmp_path)
    assert list(table["precision"]) == ["bfloat16", "float32"]  # the file keeps "mixed_bfloat16"
    assert framework_comparison(table) is None  # no float32 airbench row yet
    _write(tmp_path, "throughput-airbench-cpu-batch-b1024.json", ours(285.0).as_dict())
    assert "285 img/s" in framework_comparison(load_throughputs(tmp_path))


def test_framework_comparison_needs_both_figures(tmp_path):
    assert framework_comparison(load_throughputs(tmp_path)) is None
    _write(tmp_path, "throughput-airbench-cpu-batch-b1024.json", ours().as_dict())
    assert framework_comparison(load_throughputs(tmp_path)) is None


def test_the_vector_isa_is_the_widest_extension_in_cpuinfo_flags(tmp_path):
    from cifarkit.core.repro import cpu_vector_isa

    info = tmp_path / "cpuinfo"
    info.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 avx512f avx512_bf16\n")
    assert cpu_vector_isa(str(info)) == "avx512f"
    info.write_text("model name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    assert cpu_vector_isa(str(info)) == "avx2"
    info.write_text("model name\t: ARM\nFeatures\t: neon\n")
    assert cpu_vector_isa(str(info)) == "unknown"
    assert cpu_vector_isa(str(tmp_path / "missing")) == "unknown"


def test_native_bfloat16_needs_avx512_bf16_or_amx(tmp_path):
    from cifarkit.core.repro import cpu_has_bfloat16

    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: avx2 avx512f avx512_bf16\n")
    assert cpu_has_bfloat16(str(info))
    info.write_text("flags\t\t: avx2 avx512f amx_bf16\n")
    assert cpu_has_bfloat16(str(info))
    info.write_text("flags\t\t: avx2 avx512f\n")
    assert not cpu_has_bfloat16(str(info))


def test_bfloat16_sets_the_policy_and_warns_on_a_cpu_without_it(caplog):
    import keras

    from cifarkit.core.config import load_config
    from cifarkit.core.precision import Machine, use_machine
    from cifarkit.training.fit import configure_precision

    try:
        with use_machine(Machine(cpu_bfloat16=False)):
            assert (
                configure_precision(
                    load_config("airbench", "smoke", {"train.precision": "bfloat16"})
                )
                == "mixed_bfloat16"
            )
            assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
            assert "no native bfloat16" in caplog.text
            assert configure_precision(load_config("airbench", "smoke")) == "float32"  # auto, here
            assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_resnet20_is_compared_with_pytorch_per_layout_and_precision_not_with_transfer_runs(
    tmp_path,
):
    def keras(experiment, batch, img_s, precision="float32"):
        return Throughput(
            "resnet20",
            batch,
            40,
            img_s,
            img_s,
            9000.0,
            "per_image",
            "cpu",
            "keras 3.15.0",
            EPYC,
            experiment,
            precision=precision,
            synthetic_runs=[img_s - 5, img_s, img_s + 5],
            pipeline_runs=[img_s] * 3,
        ).as_dict()

    _write(tmp_path, "throughput-resnet20-cpu-per_image-b128.json", keras("resnet20", 128, 480.0))
    _write(
        tmp_path,
        "throughput-resnet20-cpu-per_image-b128-bf16.json",
        keras("resnet20", 128, 590.0, "mixed_bfloat16"),
    )
    _write(
        tmp_path,
        "throughput-transfer_target-cpu-per_image-b32.json",
        keras("transfer_target", 32, 300.0),
    )
    for name, layout, precision, img_s in (
        ("torch", "nchw", "float32", 458.0),
        ("torch-cl", "channels_last", "float32", 528.0),
        ("torch-cl-bf16", "channels_last", "mixed_bfloat16", 800.0),
    ):
        _write(
            tmp_path,
            f"throughput-resnet20-{name}.json",
            {
                "model": "resnet20",
                "experiment": "resnet20",
                "framework": "torch 2.13.0+cpu",
                "batch_size": 128,
                "synthetic_img_s": img_s,
                "synthetic_runs": [img_s - 2, img_s + 2],
                "precision": precision,
                "memory_format": layout,
                "environment": EPYC,
            },
        )
    table = load_throughputs(tmp_path)
    nchw = framework_comparison(table, "resnet20", "resnet20", "float32", "nchw")
    assert "480 img/s (475-485)" in nchw and "458 img/s (456-460)" in nchw and "1.05×" in nchw
    assert "epochs of" not in nchw  # the airbench94 schedule sentence is airbench's only
    assert "528 img/s" in framework_comparison(
        table, "resnet20", "resnet20", "float32", "channels_last"
    )
    bf16 = framework_comparison(table, "resnet20", "resnet20", "bfloat16", "channels_last")
    assert "590 img/s" in bf16 and "800 img/s" in bf16 and "0.74×" in bf16
    assert "300 img/s" not in nchw  # a transfer run's batch-32 figure is not ResNet20's
