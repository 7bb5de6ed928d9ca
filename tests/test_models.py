"""Model builders: parameter counts, shapes, names, flat graphs, serialisation, L2, weights."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from cifarkit.core.config import ModelConfig
from cifarkit.core.errors import CifarkitError
from cifarkit.models import backbones, build_model, count_params, resnet
from cifarkit.models.backbones import BACKBONES, backbone_model, is_backbone_layer
from cifarkit.models.cnn import baseline_cnn, baseline_conv_blocks
from cifarkit.models.resnet import cifar_resnet, resnet_stage_outputs

ALL_MODELS = ["baseline_cnn", "resnet20", "resnet32", "resnet44", "resnet56", *BACKBONES]
CIFAR_NAME = re.compile(
    r"image|normalize|logits|head_(pool|flatten|dropout)"
    r"|stem_(conv|bn|relu)"
    r"|block\d+_(conv\d+|bn\d+|relu\d+|out|pool)"
    r"|stage\d+_block\d+_(pad|conv[12]|bn[12]|relu1|shortcut_pool|shortcut_pad|add|out)"
)


@pytest.fixture(scope="module")
def built() -> dict[str, keras.Model]:
    """Each model once (weights none, input 32), shared by the read-only tests."""
    return {name: build_model(ModelConfig(name=name)) for name in ALL_MODELS}


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")


def keras_auto_named(layer: keras.layers.Layer) -> bool:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", type(layer).__name__).lower()
    return re.fullmatch(rf"{snake}(_\d+)?", layer.name) is not None


def trainable_count(model: keras.Model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    ("depth", "paper"), [(20, 0.27e6), (32, 0.46e6), (44, 0.66e6), (56, 0.85e6)]
)
def test_resnet_parameter_counts_match_the_paper(depth: int, paper: float) -> None:
    model = cifar_resnet(depth)
    total, trainable = count_params(model), trainable_count(model)
    print(f"resnet{depth}: {total} parameters ({trainable} trainable), paper {paper / 1e6:.2f}M")
    assert abs(total - paper) / paper < 0.015
    assert abs(trainable - paper) / paper < 0.015


def test_option_a_shortcuts_have_no_parameters_and_pad_with_zeros() -> None:
    model = cifar_resnet(20)
    shortcut_layers = [layer for layer in model.layers if "_shortcut_" in layer.name]
    assert {layer.name for layer in shortcut_layers} == {
        "stage2_block1_shortcut_pool",
        "stage2_block1_shortcut_pad",
        "stage3_block1_shortcut_pool",
        "stage3_block1_shortcut_pad",
    }
    assert all(not layer.weights for layer in shortcut_layers)
    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3) + 1
    padded = keras.ops.convert_to_numpy(resnet.ChannelPad(1, 2)(x))
    assert padded.shape == (2, 4, 4, 6)
    np.testing.assert_array_equal(padded[..., 1:4], x)
    assert not padded[..., [0, 4, 5]].any()


@pytest.mark.parametrize("depth", [0, 2, 18, 21, 33])
def test_resnet_depth_must_be_6n_plus_2(depth: int) -> None:
    with pytest.raises(CifarkitError, match="6n"):
        cifar_resnet(depth)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_output_is_finite_logits_of_shape_batch_by_classes(
    name: str, built: dict, images: np.ndarray
) -> None:
    model = built[name]
    assert model.input_shape == (None, 32, 32, 3)
    assert model.inputs[0].dtype == "float32"
    logits_layer = model.get_layer("logits")
    assert model.layers[-1] is logits_layer
    assert isinstance(logits_layer, keras.layers.Dense)
    assert logits_layer.activation is keras.activations.linear
    out = keras.ops.convert_to_numpy(model(images, training=False))
    assert out.shape == (2, 10)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_graph_is_flat_and_every_layer_name_unique_and_explicit(name: str, built: dict) -> None:
    model = built[name]
    assert not [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))
    assert not [layer.name for layer in model.layers if keras_auto_named(layer)]
    if name not in BACKBONES:
        assert not [n for n in names if not CIFAR_NAME.fullmatch(n)]
        assert isinstance(model.get_layer("normalize"), keras.layers.Normalization)
        assert model.layers[1].name == "normalize"
    assert not [layer.name for layer in model.layers if type(layer).__name__ == "Lambda"]


def test_resnet_stage_outputs_are_the_last_blocks_of_each_stage(built: dict) -> None:
    model = built["resnet20"]
    names = resnet_stage_outputs(model)
    print("resnet20 stage outputs:", names)
    assert names == ["stage1_block3_out", "stage2_block3_out", "stage3_block3_out"]
    assert resnet_stage_outputs(built["resnet56"])[-1] == "stage3_block9_out"
    shapes = [tuple(model.get_layer(n).output.shape[1:]) for n in names]
    assert shapes == [(32, 32, 16), (16, 16, 32), (8, 8, 64)]
    assert all(model.get_layer(n.replace("_out", "_add")) for n in names)
    with pytest.raises(CifarkitError, match="cifar_resnet"):
        resnet_stage_outputs(built["baseline_cnn"])


def test_baseline_conv_blocks(built: dict) -> None:
    model = built["baseline_cnn"]
    names = baseline_conv_blocks(model)
    print("baseline conv blocks:", names, "parameters:", count_params(model))
    assert names == ["block1_out", "block2_out", "block3_out"]
    assert [model.get_layer(n).output.shape[1:3] for n in names] == [(32, 32), (16, 16), (8, 8)]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert 3 <= len(convs) <= 6
    assert [c.filters for c in convs][0] == 32 and convs[-1].filters == 128
    with pytest.raises(CifarkitError, match="baseline_cnn"):
        baseline_conv_blocks(built["resnet20"])


def test_dropout_layer_only_when_asked_for_in_cifar_models() -> None:
    assert "head_dropout" not in [layer.name for layer in cifar_resnet(8).layers]
    assert cifar_resnet(8, dropout=0.2).get_layer("head_dropout").rate == 0.2
    assert baseline_cnn(dropout=0.3).get_layer("head_dropout").rate == 0.3


@pytest.mark.parametrize("name", ["resnet20", "baseline_cnn", "efficientnetb0"])
def test_keras_file_round_trip_with_safe_mode(
    name: str, tmp_path: Path, images: np.ndarray
) -> None:
    model = build_model(ModelConfig(name=name, dropout=0.2), l2=1e-4)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(images, training=False)),
        keras.ops.convert_to_numpy(model(images, training=False)),
    )
    assert len(loaded.losses) == len(model.losses) > 0


def kernel_count(model: keras.Model) -> int:
    kinds = keras.layers.Conv2D | keras.layers.DepthwiseConv2D | keras.layers.Dense
    return sum(isinstance(layer, kinds) for layer in model.layers)


@pytest.mark.parametrize("name", ["baseline_cnn", "resnet20", "mobilenetv2"])
def test_l2_regularises_every_conv_and_dense_kernel_only(name: str, built: dict) -> None:
    assert not built[name].losses
    model = build_model(ModelConfig(name=name), l2=1e-3)
    assert len(model.losses) == kernel_count(model) > 0
    regularised = [w for w in model.weights if w.regularizer is not None]
    assert all(re.search(r"kernel", w.path) for w in regularised)
    total = float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses))
    expected = 1e-3 * sum(
        float(np.sum(np.square(keras.ops.convert_to_numpy(w)))) for w in regularised
    )
    assert total == pytest.approx(expected, rel=1e-4)
    with pytest.raises(CifarkitError, match="l2"):
        build_model(ModelConfig(name=name), l2=-1.0)


def test_resnet_and_baseline_kernels_are_regularised_at_construction() -> None:
    model = cifar_resnet(8, l2=1e-4)
    assert model.get_layer("stage1_block1_conv1").kernel_regularizer is not None
    assert model.get_layer("logits").kernel_regularizer is not None
    assert model.get_layer("logits").bias_regularizer is None
    assert model.get_layer("stem_bn").gamma_regularizer is None


@pytest.fixture
def empty_keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path / "keras"


@pytest.mark.parametrize(
    ("name", "size", "file_name"),
    [
        ("resnet50", 32, "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
        ("efficientnetb0", 32, "efficientnetb0_notop.h5"),
        ("mobilenetv2", 96, "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"),
    ],
)
def test_missing_imagenet_weights_name_the_file_and_both_places(
    name: str, size: int, file_name: str, empty_keras_home: Path
) -> None:
    with pytest.raises(CifarkitError) as info:
        build_model(ModelConfig(name=name, weights="imagenet", input_size=size))
    message = str(info.value)
    assert file_name in message
    assert str(empty_keras_home / "models") in message
    assert "weights_path" in message
    assert "\n" not in message
    with pytest.raises(CifarkitError, match="does not exist"):
        backbone_model(
            name, weights="imagenet", weights_path=empty_keras_home / file_name, input_size=size
        )


def test_mobilenetv2_imagenet_weights_need_a_supported_size(empty_keras_home: Path) -> None:
    with pytest.raises(CifarkitError, match="96, 128, 160, 192, 224"):
        backbone_model("mobilenetv2", weights="imagenet", input_size=32)


def write_legacy_weights(model: keras.Model, path: Path) -> None:
    """Write ``model``'s weights in the legacy .h5 layout keras.applications downloads."""
    from keras.src.legacy.saving import legacy_h5_format

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


def test_imagenet_weights_load_from_keras_cache(empty_keras_home: Path, images: np.ndarray) -> None:
    donor = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3))
    write_legacy_weights(
        donor, empty_keras_home / "models" / backbones.weights_file_name("mobilenetv2", 96)
    )
    model = build_model(ModelConfig(name="mobilenetv2", weights="imagenet", input_size=96))
    assert model.get_layer("resize").output.shape[1:3] == (96, 96)
    for layer in (layer for layer in donor.layers if layer.weights):
        for mine, theirs in zip(
            model.get_layer(layer.name).get_weights(), layer.get_weights(), strict=True
        ):
            np.testing.assert_array_equal(mine, theirs)
    assert np.isfinite(keras.ops.convert_to_numpy(model(images, training=False))).all()


def test_efficientnet_weights_from_path_fold_keras_imagenet_rescaling(tmp_path: Path) -> None:
    donor = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(32, 32, 3)
    )
    norm = next(layer for layer in donor.layers if isinstance(layer, keras.layers.Normalization))
    norm.adapt_mean.assign([0.485, 0.456, 0.406])
    norm.adapt_variance.assign([0.229, 0.224, 0.225])
    path = tmp_path / "weights" / "efficientnetb0_notop.h5"
    write_legacy_weights(donor, path)
    model = backbone_model("efficientnetb0", weights="imagenet", weights_path=path)
    loaded = model.get_layer("preprocess_normalization")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded.adapt_variance),
        np.square([0.229, 0.224, 0.225]),
        rtol=1e-6,
    )
    np.testing.assert_array_equal(
        model.get_layer("top_conv").get_weights()[0], donor.get_layer("top_conv").get_weights()[0]
    )


def test_wrong_weights_file_is_a_cifarkit_error(tmp_path: Path) -> None:
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    write_legacy_weights(cifar_resnet(8), path)
    with pytest.raises(CifarkitError, match="cannot load"):
        backbone_model("resnet50", weights="imagenet", weights_path=path)


def test_backbone_layers_are_told_apart_from_preprocessing_and_head(built: dict) -> None:
    model = built["resnet50"]
    assert [layer.name for layer in model.layers[:2]] == ["image", "preprocess_caffe"]
    assert [layer.name for layer in model.layers[-3:]] == ["head_pool", "head_dropout", "logits"]
    flags = {layer.name: is_backbone_layer(layer) for layer in model.layers}
    assert flags["conv1_conv"] and flags["conv5_block3_out"]
    assert not any(
        flags[n] for n in ("image", "preprocess_caffe", "head_pool", "head_dropout", "logits")
    )
    effnet = backbone_model("efficientnetb0", input_size=64)
    assert not is_backbone_layer(effnet.get_layer("resize"))
    assert not is_backbone_layer(effnet.get_layer("preprocess_normalization"))
    assert is_backbone_layer(effnet.get_layer("top_activation"))


def test_caffe_preprocessing_matches_keras_applications_and_reloads(
    images: np.ndarray, tmp_path: Path
) -> None:
    expected = keras.applications.resnet50.preprocess_input(images.copy())
    inputs = keras.Input((32, 32, 3), name="image")
    model = keras.Model(inputs, backbones.CaffePreprocess(name="preprocess_caffe")(inputs))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(images)), expected, atol=1e-4)
    model.save(tmp_path / "caffe.keras")
    loaded = keras.models.load_model(tmp_path / "caffe.keras", safe_mode=True)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(images)), keras.ops.convert_to_numpy(model(images))
    )


def test_build_model_rejects_options_that_do_not_apply() -> None:
    with pytest.raises(CifarkitError, match="input_size"):
        build_model(ModelConfig(name="resnet20", input_size=64))
    with pytest.raises(CifarkitError, match="weights_path"):
        build_model(ModelConfig(name="baseline_cnn", weights_path="/tmp/x.h5"))
    with pytest.raises(CifarkitError, match="weights_path"):
        build_model(ModelConfig(name="resnet50", weights_path="/tmp/x.h5"))
    with pytest.raises(CifarkitError, match="unknown backbone"):
        backbone_model("vgg16")


def test_build_model_passes_the_config_through() -> None:
    model = build_model(ModelConfig(name="mobilenetv2", dropout=0.4, input_size=48), num_classes=7)
    assert model.get_layer("resize").output.shape[1:3] == (48, 48)
    assert model.get_layer("head_dropout").rate == 0.4
    assert model.output_shape == (None, 7)
    assert build_model(ModelConfig(name="resnet32")).name == "resnet32"
