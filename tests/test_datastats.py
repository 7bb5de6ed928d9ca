"""cifarkit.data.statistics on a tiny synthetic Splits-like object (no real data needed)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from cifarkit.data import statistics as datastats

NAMES = ("a", "b", "c")


@dataclasses.dataclass
class FakeSplits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] = NAMES


def _images(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 4, 4, 3), dtype=np.uint8)


@pytest.fixture
def splits() -> FakeSplits:
    rng = np.random.default_rng(123)
    y_train = np.array([0] * 6 + [1] * 5 + [2] * 4, dtype=np.int64)
    y_val = np.array([0, 1, 2, 2], dtype=np.int64)
    y_test = np.array([0, 0, 1, 1, 2, 2], dtype=np.int64)
    return FakeSplits(_images(15, rng), y_train, _images(4, rng), y_val, _images(6, rng), y_test)


def test_split_sizes(splits):
    assert datastats.split_sizes(splits) == {"train": 15, "val": 4, "test": 6}
    assert datastats.image_size_text(splits) == "4x4"


def test_class_balance_counts_and_shares(splits):
    table = datastats.class_balance(splits)
    assert list(table.index) == [*NAMES, "total"]
    assert table["train"].tolist() == [6, 5, 4, 15]
    assert table["val"].tolist() == [1, 1, 2, 4]
    assert table["test"].tolist() == [2, 2, 2, 6]
    assert table.loc["a", "train %"] == pytest.approx(40.0)
    assert table.loc["total", "test %"] == pytest.approx(100.0)
    assert table["train"].dtype == np.int64


def test_class_balance_rejects_labels_out_of_range(splits):
    bad = dataclasses.replace(splits, y_val=np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="val labels"):
        datastats.class_balance(bad)


def test_balance_spread_and_note(splits):
    spread = datastats.balance_spread(splits)
    assert spread == {"train": pytest.approx(1.5), "val": pytest.approx(2.0), "test": 1.0}
    assert "imbalanced" in datastats.balance_note(spread) and "2.00" in datastats.balance_note(
        spread
    )
    assert "fair" in datastats.balance_note({"train": 1.0, "val": 1.0, "test": 1.0})


def test_channel_histograms_exact_and_chunked(splits, monkeypatch):
    monkeypatch.setattr(datastats, "_CHUNK", 4)  # force several chunks
    hist = datastats.channel_histograms(splits.x_train)
    assert hist.shape == (3, 256) and hist.dtype == np.int64
    for c in range(3):
        expected = np.bincount(splits.x_train[..., c].ravel(), minlength=256)
        np.testing.assert_array_equal(hist[c], expected)
    assert hist.sum(axis=1).tolist() == [15 * 16] * 3


def test_channel_histograms_rejects_float():
    with pytest.raises(ValueError, match="uint8"):
        datastats.channel_histograms(np.zeros((2, 4, 4, 3), dtype=np.float32))


def test_channel_stats_match_numpy(splits):
    stats = datastats.channel_stats(splits)
    assert list(stats.index.names) == ["split", "channel"]
    assert len(stats) == 9
    for split in ("train", "val", "test"):
        x = getattr(splits, f"x_{split}").astype(np.float64)
        for c, channel in enumerate(datastats.CHANNELS):
            row = stats.loc[(split, channel)]
            assert row["mean (0-255)"] == pytest.approx(x[..., c].mean())
            assert row["std (0-255)"] == pytest.approx(x[..., c].std())
            assert row["mean (0-1)"] == pytest.approx(x[..., c].mean() / 255)
            assert row["std (0-1)"] == pytest.approx(x[..., c].std() / 255)


def test_channel_stats_reuses_histograms(splits):
    hists = datastats.split_histograms(splits)
    a = datastats.channel_stats(splits, hists)
    b = datastats.channel_stats(splits)
    assert a.equals(b)


def test_constant_image_has_zero_std():
    x = np.full((2, 2, 2, 3), 51, dtype=np.uint8)
    y = np.array([0, 1])
    s = FakeSplits(x, y, x, y, x, y, class_names=("p", "q"))
    stats = datastats.channel_stats(s)
    assert stats["mean (0-1)"].tolist() == pytest.approx([0.2] * 9)
    assert stats["std (0-255)"].tolist() == pytest.approx([0.0] * 9)


def test_histogram_frame(splits):
    frame = datastats.histogram_frame(datastats.split_histograms(splits))
    assert set(frame.columns) == {"split", "channel", "value", "count", "density"}
    assert len(frame) == 3 * 3 * 256
    sums = frame.groupby(["split", "channel"])["density"].sum()
    assert sums.tolist() == pytest.approx([1.0] * 9)


def test_sample_indices_deterministic_and_per_class(splits):
    a = datastats.sample_indices(splits.y_train, per_class=3, seed=7)
    b = datastats.sample_indices(splits.y_train, per_class=3, seed=7)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 3)
    for k in range(3):
        assert (splits.y_train[a[k]] == k).all()
        assert len(set(a[k])) == 3 and list(a[k]) == sorted(a[k])
    seeds = {datastats.sample_indices(splits.y_train, 3, seed=s).tobytes() for s in range(10)}
    assert len(seeds) > 1  # the seed matters


def test_sample_indices_errors(splits):
    with pytest.raises(ValueError, match="fewer than"):
        datastats.sample_indices(splits.y_train, per_class=5)  # class 2 has 4
    with pytest.raises(ValueError, match="at least 1"):
        datastats.sample_indices(splits.y_train, per_class=0)


def test_sample_images(splits):
    images, idx = datastats.sample_images(splits, "test", per_class=2, seed=0)
    assert images.shape == (3, 2, 4, 4, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, splits.x_test[idx])
    with pytest.raises(ValueError, match="unknown split"):
        datastats.sample_images(splits, "holdout")


def test_split_summary_and_notes(splits):
    smoke = SimpleNamespace(train_per_class=300, val_per_class=100, split_seed=0, test_limit=1000)
    full = SimpleNamespace(train_per_class=None, val_per_class=1000, split_seed=0, test_limit=None)
    table = datastats.split_summary(splits, smoke)
    assert table["images"].tolist() == [15, 4, 6]
    assert table.loc["train", "per class"] == "4-6"
    assert table.loc["test", "per class"] == "2"
    assert "subsampled to 300" in table.loc["train", "how"]
    assert "subsamples" in datastats.subsampling_note(smoke)
    assert "300" in datastats.subsampling_note(smoke)
    assert "nothing is subsampled" in datastats.subsampling_note(full)
    assert datastats.split_summary(splits)["how"].tolist() == ["", "", ""]


def test_provenance_note():
    assert "JPEG" in datastats.provenance_note("image-folder-archive")
    # One measured run (airbench94), stated as such, not as a general range.
    assert "about 3 points lower in one measured run (airbench94" in datastats.provenance_note(
        "image-folder"
    )
    assert "official" in datastats.provenance_note("official-archive")
    assert "JPEG" not in datastats.provenance_note("keras-download")


def test_rgb_values_and_text():
    x = np.zeros((1, 1, 2, 3), dtype=np.uint8)
    x[..., 0], x[..., 1], x[..., 2] = 255, 51, 0
    y = np.array([0])
    stats = datastats.channel_stats(FakeSplits(x, y, x, y, x, y, class_names=("p",)))
    assert datastats.rgb_values(stats, "mean (0-1)", "val") == pytest.approx((1.0, 0.2, 0.0))
    assert datastats.rgb_text(stats, "mean (0-255)", digits=1) == "255.0 / 51.0 / 0.0"


# --------------------------------------------------------------------------- the figures drawn from these


def test_data_figures_are_figures_deterministic_and_not_in_pyplot(splits):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from cifarkit import plots

    def draw():
        images, _ = datastats.sample_images(splits, "train", per_class=2, seed=0)
        return [
            plots.class_balance_bars(datastats.class_balance(splits), title="balance"),
            plots.sample_grid(images, splits.class_names, title="samples"),
            plots.channel_histograms(datastats.split_histograms(splits)),
        ]

    before = plt.get_fignums()
    first, second = draw(), draw()
    assert all(isinstance(f, Figure) for f in first)
    assert plt.get_fignums() == before  # nothing registered with pyplot, nothing to show
    assert [plots.to_png_bytes(f) for f in first] == [plots.to_png_bytes(f) for f in second]
    grid_image = first[1].axes[0].images[0]
    assert grid_image.get_interpolation() == "nearest"
    assert [t.get_text() for t in first[1].axes[0].get_yticklabels()] == list(NAMES)
    assert len(first[2].axes) == 3 and [a.get_title() for a in first[2].axes] == [
        "red",
        "green",
        "blue",
    ]


def test_sample_grid_rejects_bad_shapes():
    from cifarkit import plots

    with pytest.raises(ValueError, match="classes, per_class"):
        plots.sample_grid(np.zeros((2, 4, 4, 3), dtype=np.uint8), ["a", "b"])
    with pytest.raises(ValueError, match="class names"):
        plots.sample_grid(np.zeros((2, 1, 4, 4, 3), dtype=np.uint8), ["a"])


def test_style_palette_is_colourblind():
    import matplotlib as mpl
    import seaborn as sns

    from cifarkit import plots

    assert plots.palette(3) == list(sns.color_palette("colorblind"))[:3]
    with mpl.rc_context():
        plots.apply_style()
        assert mpl.rcParams["image.interpolation"] == "nearest"
