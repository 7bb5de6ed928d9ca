"""Inference exports of a stored run: SavedModel and ONNX, parity with the stored logits,
loading without cifarkit, the manifest, atomic replacement, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from train_fixtures import tiny_experiment, tiny_image_tree, write_model_run

from cifarkit.cli import main
from cifarkit.core.config import load_config
from cifarkit.core.errors import CifarkitError
from cifarkit.data import splits_from_config

pytestmark = pytest.mark.slow

needs_onnx = pytest.mark.skipif(
    any(__import__("importlib").util.find_spec(m) is None for m in ("tf2onnx", "onnxruntime")),
    reason="the onnx extra (tf2onnx, onnxruntime) is not installed",
)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    data = tiny_image_tree(tmp_path / "data", train_per_class=6, test_per_class=4)
    monkeypatch.setenv("CIFARKIT_DATA", str(data))

    def config(model="baseline_cnn"):
        cfg = load_config(tiny_experiment(tmp_path, data, model=model, epochs=1), None)
        return cfg, splits_from_config(cfg.data)

    return config


def test_savedmodel_export_matches_the_run_and_loads_without_cifarkit(tiny, tmp_path):
    from cifarkit.runs.export import export_run, load_export

    cfg, splits = tiny()
    run, _ = write_model_run(cfg, splits)
    result = export_run(run, "savedmodel", out=tmp_path / "exported")
    manifest = json.loads((result.path / "export.json").read_text())
    assert manifest == result.manifest
    assert manifest["class_names"] == list(splits.class_names)
    assert manifest["input"]["dtype"] == "uint8" and manifest["input"]["shape"] == [None, 32, 32, 3]
    assert manifest["run"] == run.path.name and manifest["config_hash"] == cfg.content_hash()
    assert manifest["parity"]["ok"] and manifest["parity"]["max_abs_logit_diff"] <= 1e-4
    assert manifest["parity"]["images"] == len(splits.y_test)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".exported")]  # no staging left

    # TensorFlow alone: any import of cifarkit in the child fails.
    child = (
        "import sys; sys.modules['cifarkit'] = None\n"
        "import numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(result.path)!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        "out = m.serve(tf.constant(x))\n"
        "np.save(sys.argv[1], out['logits'].numpy())\n"
        "print(','.join(n.decode() for n in m.class_names().numpy()))\n"
    )
    np.save(tmp_path / "x.npy", splits.x_test[:8])
    done = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path / "out.npy")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == ",".join(splits.class_names)
    stored, _ = run.predictions("test")
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), stored[:8], atol=1e-4)

    loaded = load_export(result.path)
    probs = loaded.predict(splits.x_test[:5])["probabilities"]
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    with pytest.raises(CifarkitError, match="uint8 images"):
        loaded.predict(splits.x_test[:2].astype(np.float32))


@needs_onnx
@pytest.mark.parametrize("model", ["baseline_cnn", "airbench"])  # airbench: exact GELU's Erfc
def test_onnx_export_matches_the_run(tiny, tmp_path, model):
    import onnxruntime

    from cifarkit.runs.export import export_run

    cfg, splits = tiny(model)
    run, _ = write_model_run(cfg, splits)
    result = export_run(run, "onnx", out=tmp_path / "onnx")
    assert sorted(p.name for p in result.path.iterdir()) == ["export.json", "model.onnx"]
    ort_model = onnxruntime.InferenceSession(
        str(result.path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert json.loads(ort_model.get_modelmeta().custom_metadata_map["class_names"]) == list(
        splits.class_names
    )
    assert [i.name for i in ort_model.get_inputs()] == ["images"]
    logits = dict(
        zip(
            [o.name for o in ort_model.get_outputs()],
            ort_model.run(None, {"images": splits.x_test}),
            strict=True,
        )
    )["logits"]
    stored, _ = run.predictions("test")
    assert np.max(np.abs(logits - stored)) <= 1e-4
    assert result.parity["max_abs_logit_diff"] <= 1e-4


def test_a_failed_parity_check_exits_2_and_leaves_nothing(tiny, tmp_path, capsys):
    cfg, splits = tiny()
    wrong = np.zeros((len(splits.y_test), len(splits.class_names)), np.float32)
    run, _ = write_model_run(cfg, splits, logits=wrong + 5.0)
    out = tmp_path / "bad-export"
    code = main(["-q", "export", str(run.path), "--out", str(out)])
    err = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("cifarkit: error:")
    ]
    assert code == 2 and len(err) == 1
    assert "failed its parity check" in err[0] and "nothing was written" in err[0]
    assert not out.exists() and not [
        p for p in tmp_path.iterdir() if p.name.startswith(".bad-export")
    ]


def test_export_replaces_an_earlier_export_but_refuses_other_folders(tiny, tmp_path, capsys):
    cfg, splits = tiny()
    run, _ = write_model_run(cfg, splits)
    assert main(["export", run.path.name]) == 0  # a run folder name under artifacts/runs
    printed = capsys.readouterr().out
    assert "parity: max |Δlogit|" in printed and "exported" in printed
    from cifarkit.runs.export import default_export_dir

    target = default_export_dir(run, "savedmodel")
    first = json.loads((target / "export.json").read_text())["created_at"]
    (target / "stale.txt").write_text("from the earlier export")
    assert main(["export", str(run.path)]) == 0
    assert not (target / "stale.txt").exists() and (target / "saved_model.pb").is_file()
    assert json.loads((target / "export.json").read_text())["created_at"] >= first

    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    capsys.readouterr()
    assert main(["export", str(run.path), "--out", str(other)]) == 2
    assert "is not a cifarkit export" in capsys.readouterr().err
    assert (other / "notes.txt").read_text() == "keep me"


def test_a_run_that_is_not_there_names_the_command_that_trains_it(tiny, capsys):
    tiny()
    assert main(["export", "resnet20", "--profile", "smoke", "--seed", "4"]) == 2
    err = capsys.readouterr().err
    assert (
        "no complete run of resnet20" in err
        and "cifarkit train resnet20 --profile smoke --seed 4" in err
    )
    assert main(["export", "no-such-thing-0123"]) == 2
    assert "neither a run folder" in capsys.readouterr().err


def test_predict_answers_from_a_run_and_from_its_export_alike(tiny, tmp_path, capsys):
    from PIL import Image

    cfg, splits = tiny()
    run, _ = write_model_run(cfg, splits)
    images = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(splits.x_test[i]).resize((96, 64)).save(path)
        images.append(str(path))
    (tmp_path / "empty.jpg").write_bytes(b"")
    images.append(str(tmp_path / "empty.jpg"))
    code = main(["-q", "predict", *images, "--run", str(run.path), "--json", "--top", "2"])
    captured = capsys.readouterr()
    assert code == 2
    errors = [line for line in captured.err.splitlines() if line.startswith("cifarkit: error:")]
    assert errors == [
        f"cifarkit: error: {tmp_path / 'empty.jpg'}: empty file (0 bytes); re-save or re-download it"
    ]
    from_run = json.loads(captured.out)
    assert [r["ok"] for r in from_run["results"]] == [True, True, True, False]
    assert all(len(r["top"]) == 2 and r["resize"] == "box" for r in from_run["results"][:3])

    assert main(["export", str(run.path), "--out", str(tmp_path / "exp")]) == 0
    capsys.readouterr()
    assert (
        main(["predict", *images[:3], "--export", str(tmp_path / "exp"), "--json", "--top", "2"])
        == 0
    )
    from_export = json.loads(capsys.readouterr().out)
    for a, b in zip(from_run["results"][:3], from_export["results"], strict=True):
        assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]
        np.testing.assert_allclose(
            [t["probability"] for t in a["top"]], [t["probability"] for t in b["top"]], atol=1e-5
        )


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_a_run_trained_in_reduced_precision_predicts_and_exports_in_float32(
    tmp_path, monkeypatch, precision
):
    """bfloat16 trains on this CPU; float16 needs a GPU, faked through use_machine (TensorFlow
    on a CPU has float16 kernels, slow ones). Loaded again, the model computes in float32: the
    stored test logits (computed so after training), predict and the export agree to 1e-4."""
    import contextlib
    import zipfile

    import keras

    from cifarkit.core.precision import Machine, use_machine
    from cifarkit.runs import get_or_train
    from cifarkit.runs.export import export_run
    from cifarkit.runs.predict import classifier_from_run

    data = tiny_image_tree(tmp_path / "data", train_per_class=6, test_per_class=4)
    monkeypatch.setenv("CIFARKIT_DATA", str(data))
    cfg = load_config(
        tiny_experiment(tmp_path, data, epochs=1, extra=f"  precision: {precision}\n"), None
    )
    machine = (
        use_machine(Machine(gpus=("Fake GPU",)))
        if precision == "float16"
        else contextlib.nullcontext()
    )
    try:
        with machine:
            run = get_or_train(cfg, 0, register=False)
        assert (
            keras.mixed_precision.global_policy().name == "float32"
        )  # training gave the process its policy back
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with zipfile.ZipFile(run.model_path) as archive:  # the file keeps the policy it trained under
        assert f'"name": "mixed_{precision}"' in archive.read("config.json").decode()

    model = run.load_model()
    assert {layer.dtype_policy.compute_dtype for layer in model.layers} == {"float32"}
    stored, _ = run.predictions("test")
    splits = splits_from_config(cfg.data)
    probabilities = classifier_from_run(run).probabilities(splits.x_test)
    shifted = np.exp(stored - stored.max(axis=1, keepdims=True))
    np.testing.assert_allclose(
        probabilities, shifted / shifted.sum(axis=1, keepdims=True), atol=1e-5
    )
    # Loaded as it was saved, the model would compute in 16 bits and miss the stored logits.
    from cifarkit.models import predict_logits

    as_saved = keras.models.load_model(run.model_path, safe_mode=True, compile=False)
    assert np.max(np.abs(predict_logits(as_saved, splits.x_test) - stored)) > 1e-3

    exported = export_run(run, "savedmodel", out=tmp_path / "exported")
    assert (
        exported.manifest["parity"]["ok"]
        and exported.manifest["parity"]["max_abs_logit_diff"] <= 1e-4
    )
