"""Self-contained inference exports of a stored run: a SavedModel (TensorFlow alone) or ONNX.

An export is one folder holding the model and ``export.json``, its manifest (class names,
input and output spec, run name, config hash, parity). The model takes what an image file
decodes to: ``uint8`` RGB pixels, ``(N, 32, 32, 3)`` NHWC, and returns ``logits`` and
``probabilities`` (softmax of the logits). The cast to float and the normalisation are
inside the graph, so a user needs no cifarkit:

* ``savedmodel``: Keras' own :class:`keras.export.ExportArchive` traces the model into a
  TensorFlow graph (cifarkit's custom layers are traced away), with the endpoints
  ``serve(images)`` and ``class_names()``. ``tf.saved_model.load(folder)`` loads it.
* ``onnx``: that SavedModel converted by tf2onnx (the ``onnx`` extra), with the class
  names in the model's metadata (``class_names``, JSON). ``onnxruntime`` runs it.

Before an export is put in place its logits on the run's test images are compared with the
logits the run stored when it was trained; a difference above the tolerance fails the
export and nothing is left behind (the folder is written under a temporary name and renamed
only once it passed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cifarkit.core.atomic import fsync_dir, write_json
from cifarkit.core.errors import CifarkitError
from cifarkit.core.paths import artifacts_dir
from cifarkit.runs.run import Run

log = logging.getLogger(__name__)

FORMATS = ("savedmodel", "onnx")
MANIFEST = "export.json"
ONNX_FILE = "model.onnx"
ONNX_OPSET = 17
PARITY_TOLERANCE = 1e-4
SERVE_BATCH = 256
INPUT_SPEC: dict[str, Any] = {
    "name": "images",
    "dtype": "uint8",
    "shape": [None, 32, 32, 3],
    "layout": "NHWC",
    "channels": "RGB",
    "values": "0..255, already resized to 32x32 (cifarkit predict resizes with Pillow)",
}
ONNX_EXTRA = (
    "pip install -e '.[onnx]' (tf2onnx, onnx and onnxruntime at the pins of requirements.lock)"
)


@dataclass(frozen=True)
class Parity:
    """How closely an export reproduces the run's stored test logits."""

    max_abs_logit_diff: float
    images: int
    tolerance: float
    argmax_agreement: float  # fraction of test images whose top class is the same
    logit_scale: float  # max |stored logit|, to read the difference against

    @property
    def ok(self) -> bool:
        return self.max_abs_logit_diff <= self.tolerance

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_abs_logit_diff": self.max_abs_logit_diff,
            "images": self.images,
            "tolerance": self.tolerance,
            "argmax_agreement": self.argmax_agreement,
            "logit_scale": self.logit_scale,
            "ok": self.ok,
        }


@dataclass(frozen=True)
class Export:
    """A written export: its folder and manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def parity(self) -> dict[str, Any]:
        return self.manifest["parity"]


def default_export_dir(run: Run, fmt: str) -> Path:
    """``artifacts/exports/<run folder name>-<format>/``."""
    return artifacts_dir() / "exports" / f"{run.path.name}-{fmt}"


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise CifarkitError(f"unknown export format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "onnx":
        _onnx_modules()


def _onnx_modules() -> tuple[Any, Any, Any]:
    try:
        import onnx
        import onnxruntime
        import tf2onnx
    except ImportError as exc:
        raise CifarkitError(
            f"ONNX export needs {exc.name}, which is not installed; {ONNX_EXTRA}"
        ) from None
    return tf2onnx, onnx, onnxruntime


def export_run(
    run: Run,
    fmt: str = "savedmodel",
    out: str | Path | None = None,
    tolerance: float = PARITY_TOLERANCE,
) -> Export:
    """Export a complete run as a self-contained inference model, checked against its stored logits.

    Parameters
    ----------
    run : Run
        A complete run (``model.keras`` and ``predictions.npz``).
    fmt : {"savedmodel", "onnx"}, default "savedmodel"
        The export's format.
    out : str or Path, optional
        The export's folder (default :func:`default_export_dir`). An earlier export there
        is replaced; any other existing path is refused.
    tolerance : float, default 1e-4
        Largest accepted ``max |Δlogit|`` between the export and the run's stored test logits.

    Returns
    -------
    Export
        The folder and its manifest (``export.json``, also written in the folder).

    Raises
    ------
    CifarkitError
        For an incomplete run, an unknown format, a missing ONNX extra, test data that is not
        the run's, an ``out`` that is not an earlier export, or a failed parity check (then
        nothing is written).
    """
    _check_format(fmt)
    if not tolerance > 0:
        raise CifarkitError(f"parity tolerance must be > 0, got {tolerance}")
    model = run.load_model()  # fails clearly for an incomplete run
    stored_logits, stored_labels = run.predictions("test")
    images, class_names = _test_images(run, stored_labels)
    target = Path(out).expanduser().resolve() if out is not None else default_export_dir(run, fmt)
    _check_target(target)
    started = time.perf_counter()
    with _staging(target) as staging:
        if fmt == "savedmodel":
            write_savedmodel(model, class_names, staging)
        else:
            scratch = staging / ".savedmodel"
            write_savedmodel(model, class_names, scratch)
            savedmodel_to_onnx(scratch, staging / ONNX_FILE, class_names)
            shutil.rmtree(scratch)
        exported = _load_folder(staging, fmt, class_names)
        parity = _parity(exported.logits(images), stored_logits, tolerance)
        if not parity.ok:
            raise CifarkitError(
                f"export of {run.path.name} ({fmt}) failed its parity check: max |Δlogit| "
                f"{parity.max_abs_logit_diff:.3g} > {tolerance:g} on {parity.images} test images "
                f"(logits up to {parity.logit_scale:.3g}); nothing was written"
            )
        manifest = _manifest(run, fmt, class_names, parity)
        write_json(staging / MANIFEST, manifest)
        _shareable(staging)
    log.info(
        "exported %s as %s to %s in %.1f s (max |Δlogit| %.2g on %d test images)",
        run.path.name,
        fmt,
        target,
        time.perf_counter() - started,
        parity.max_abs_logit_diff,
        parity.images,
    )
    return Export(target, manifest)


def _test_images(run: Run, stored_labels: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    """The run's test images in the order of its stored logits, and its class names."""
    from cifarkit.data import splits_from_config

    record = run.status_record()
    splits = splits_from_config(run.config().data)
    expected = record.get("data_hash")
    if expected and splits.source_hash != expected:
        raise CifarkitError(
            f"the data source now configured for {run.path.name} (hash "
            f"{splits.source_hash[:12]}) is not the data it was trained on ({expected[:12]}); "
            "set CIFARKIT_DATA to the run's data to check the export against its logits"
        )
    if len(splits.y_test) != len(stored_labels) or not np.array_equal(splits.y_test, stored_labels):
        raise CifarkitError(
            f"the test split of {run.path.name} no longer matches its stored labels "
            f"({len(splits.y_test)} vs {len(stored_labels)} images); train the run again"
        )
    return splits.x_test, tuple(splits.class_names)


def _check_target(target: Path) -> None:
    if target.exists() and not (target.is_dir() and (target / MANIFEST).is_file()):
        raise CifarkitError(
            f"{target} exists and is not a cifarkit export (no {MANIFEST}); choose another "
            "--out or remove it"
        )


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` that replaces it when the block succeeds.

    On any error the folder is removed and ``target`` (an earlier export, if any) is untouched.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        yield staging
        if target.exists():
            # A folder cannot be renamed over a non-empty one: move the old export aside first.
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(staging, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, target)
        fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _shareable(folder: Path) -> None:
    """Give the export the permissions of a plain copy: ``mkdtemp`` and the atomic writes
    create owner-only folders and files, but an export is meant to be handed on."""
    umask = os.umask(0)
    os.umask(umask)
    for path in (folder, *folder.rglob("*")):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


# --------------------------------------------------------------------------- writing


def write_savedmodel(model: Any, class_names: tuple[str, ...], folder: Path) -> None:
    """Write ``model`` as a SavedModel with ``serve(images)`` and ``class_names()`` endpoints.

    Parameters
    ----------
    model : keras.Model
        A cifarkit model (float32 0..255 pixels in, logits out).
    class_names : tuple of str
        One name per logit, in logit order.
    folder : Path
        Where the SavedModel is written (created; may exist empty).

    Raises
    ------
    CifarkitError
        If the model's width does not match the class names.
    """
    import keras
    import tensorflow as tf

    width = int(model.output.shape[-1])
    if width != len(class_names):
        raise CifarkitError(
            f"the model has {width} logits but {len(class_names)} class names; "
            "export a run together with its own data"
        )
    names = tf.constant(list(class_names))

    def serve(images):
        logits = tf.cast(model(tf.cast(images, tf.float32), training=False), tf.float32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[
            tf.TensorSpec((None, *INPUT_SPEC["shape"][1:]), tf.uint8, name=INPUT_SPEC["name"])
        ],
    )
    archive.add_endpoint("class_names", lambda: names, input_signature=[])
    archive.write_out(str(folder), verbose=False)


def _erfc_as_one_minus_erf(ctx: Any, node: Any, name: str, args: Any) -> Any:
    """tf2onnx handler for TensorFlow's ``Erfc``, which exact GELU (airbench) uses and ONNX
    lacks: ``erfc(x) = 1 - erf(x)``. Its absolute error stays at float32 rounding, which is all
    GELU's ``0.5 * x * erfc(-x / sqrt(2))`` needs."""
    from tf2onnx import utils

    node.type = "Erf"
    one = ctx.make_const(utils.make_name("erfc_one"), np.array(1, np.float32))
    ctx.insert_new_node_on_output("Sub", node.output[0], inputs=[one.output[0], node.output[0]])
    return node


def savedmodel_to_onnx(savedmodel: Path, path: Path, class_names: tuple[str, ...]) -> None:
    """Convert a SavedModel written by :func:`write_savedmodel` to ONNX with tf2onnx.

    Parameters
    ----------
    savedmodel : Path
        The SavedModel folder; its ``serve`` signature is converted.
    path : Path
        The ``.onnx`` file to write.
    class_names : tuple of str
        Stored in the model's metadata as ``class_names`` (JSON list).

    Raises
    ------
    CifarkitError
        If tf2onnx is missing or cannot convert an op of the model.
    """
    tf2onnx, onnx, _ = _onnx_modules()
    from tf2onnx import tf_loader

    with _quiet("tf2onnx", "tensorflow"):
        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            str(savedmodel), None, None, signatures=["serve"], return_tensors_to_rename=True
        )
        try:
            proto, _ = tf2onnx.convert.from_graph_def(
                graph_def,
                input_names=inputs,
                output_names=outputs,
                opset=ONNX_OPSET,
                custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, [])},
                tensors_to_rename=renames,
            )
        except Exception as exc:  # noqa: BLE001 - an unconvertible op is a limit of the converter, said in one line
            raise CifarkitError(
                f"tf2onnx {tf2onnx.__version__} cannot convert this model "
                f"({' '.join(str(exc).split())[:200]}); export it as savedmodel"
            ) from None
    onnx.helper.set_model_props(
        proto,
        {
            "class_names": json.dumps(list(class_names)),
            "input": json.dumps(INPUT_SPEC),
            "producer": "cifarkit",
        },
    )
    onnx.save(proto, str(path))


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """The converter's progress and TensorFlow's deprecation notices, silenced for one block."""
    previous = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)


def _manifest(run: Run, fmt: str, class_names: tuple[str, ...], parity: Parity) -> dict[str, Any]:
    import importlib.metadata

    import cifarkit

    record = run.status_record()
    packages = ("tensorflow", "keras") + (
        ("tf2onnx", "onnx", "onnxruntime") if fmt == "onnx" else ()
    )
    versions = {
        "cifarkit": cifarkit.__version__,
        **{name: importlib.metadata.version(name) for name in packages},
    }
    usage = (
        "tf.saved_model.load(folder).serve(images=uint8 (N,32,32,3))['probabilities']"
        if fmt == "savedmodel"
        else f"onnxruntime.InferenceSession(folder/'{ONNX_FILE}').run(None, {{'images': uint8 (N,32,32,3)}})"
    )
    return {
        "format": fmt,
        "model_file": "." if fmt == "savedmodel" else ONNX_FILE,
        "endpoint": "serve" if fmt == "savedmodel" else None,
        "input": INPUT_SPEC,
        "outputs": {
            "logits": {"dtype": "float32", "shape": [None, len(class_names)]},
            "probabilities": {
                "dtype": "float32",
                "shape": [None, len(class_names)],
                "note": "softmax of logits",
            },
        },
        "class_names": list(class_names),
        "run": run.path.name,
        "run_path": str(run.path),
        "experiment": record.get("experiment"),
        "profile": record.get("profile"),
        "seed": record.get("seed"),
        "config_hash": record.get("config_hash") or run.config().content_hash(),
        "run_hash": record.get("run_hash"),
        "data_hash": record.get("data_hash"),
        "test_accuracy": record.get("test_accuracy"),
        "parity": parity.as_dict(),
        "versions": versions,
        "usage": usage,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _parity(logits: np.ndarray, stored: np.ndarray, tolerance: float) -> Parity:
    diff = float(np.max(np.abs(logits.astype(np.float64) - stored))) if len(stored) else 0.0
    agree = float(np.mean(logits.argmax(1) == stored.argmax(1))) if len(stored) else 1.0
    return Parity(
        diff,
        int(len(stored)),
        float(tolerance),
        agree,
        float(np.max(np.abs(stored))) if len(stored) else 0.0,
    )


# --------------------------------------------------------------------------- loading


class ExportedModel:
    """An export loaded for inference with TensorFlow (SavedModel) or onnxruntime (ONNX)."""

    def __init__(
        self,
        path: Path,
        fmt: str,
        class_names: tuple[str, ...],
        runner: Any,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        self.path, self.format, self.class_names = path, fmt, class_names
        self.manifest = manifest or {}
        self._runner = runner

    def predict(self, images: np.ndarray, batch_size: int = SERVE_BATCH) -> dict[str, np.ndarray]:
        """``{"logits", "probabilities"}`` of ``(N, 32, 32, 3)`` uint8 images.

        Raises
        ------
        CifarkitError
            If ``images`` are not uint8 ``(N, 32, 32, 3)``.
        """
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
            raise CifarkitError(
                f"an export takes uint8 images of shape (N, 32, 32, 3), got {images.dtype} "
                f"{images.shape}"
            )
        parts = [
            self._runner(images[i : i + batch_size]) for i in range(0, len(images), batch_size)
        ]
        if not parts:
            k = len(self.class_names)
            return {
                "logits": np.zeros((0, k), np.float32),
                "probabilities": np.zeros((0, k), np.float32),
            }
        return {key: np.concatenate([p[key] for p in parts]) for key in ("logits", "probabilities")}

    def logits(self, images: np.ndarray) -> np.ndarray:
        return self.predict(images)["logits"]


def _savedmodel_runner(path: Path) -> tuple[Any, tuple[str, ...]]:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    names = tuple(n.decode() for n in loaded.class_names().numpy())

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        out = loaded.serve(tf.constant(images))
        return {k: out[k].numpy() for k in ("logits", "probabilities")}

    # Keep the restored object (and its variables) alive with the runner, visibly.
    run.loaded = loaded  # type: ignore[attr-defined]  # an attribute on the function object
    return run, names


def _onnx_runner(path: Path) -> tuple[Any, tuple[str, ...]]:
    _, _, onnxruntime = _onnx_modules()
    ort_model = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = tuple(json.loads(ort_model.get_modelmeta().custom_metadata_map["class_names"]))
    outputs = [o.name for o in ort_model.get_outputs()]

    def run(images: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(outputs, ort_model.run(None, {INPUT_SPEC["name"]: images}), strict=True))

    return run, names


def _load_folder(
    folder: Path,
    fmt: str,
    class_names: tuple[str, ...] | None = None,
    manifest: dict[str, Any] | None = None,
) -> ExportedModel:
    runner, names = (
        _savedmodel_runner(folder) if fmt == "savedmodel" else _onnx_runner(folder / ONNX_FILE)
    )
    if class_names is not None and names != class_names:
        raise CifarkitError(
            f"{folder}: the exported class names {names} differ from the run's {class_names}"
        )
    return ExportedModel(folder, fmt, names, runner, manifest)


def load_export(path: str | Path) -> ExportedModel:
    """Load an export folder (or its ``model.onnx``) written by :func:`export_run`.

    Parameters
    ----------
    path : str or Path
        The export folder, or the ``.onnx`` file inside one.

    Returns
    -------
    ExportedModel
        Ready to :meth:`~ExportedModel.predict` uint8 images.

    Raises
    ------
    CifarkitError
        If ``path`` is not an export folder, its manifest is unreadable, or (ONNX) the onnx
        extra is missing.

    Notes
    -----
    A SavedModel is a TensorFlow graph, and a graph can hold ops that read or write files:
    load only exports you wrote or trust, as you would run only code you trust.
    """
    path = Path(path).expanduser()
    folder = path.parent if path.suffix == ".onnx" else path
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise CifarkitError(
            f"{path} is not a cifarkit export (no {MANIFEST}); write one with `cifarkit export RUN`"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        fmt = manifest["format"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CifarkitError(
            f"{manifest_path} is unreadable ({type(exc).__name__}: {exc}); export the run again"
        ) from None
    if fmt not in FORMATS:
        raise CifarkitError(f"{manifest_path}: unknown format {fmt!r}; export the run again")
    try:
        return _load_folder(folder, fmt, tuple(manifest.get("class_names") or ()) or None, manifest)
    except CifarkitError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged export is the user's to rewrite, not a bug
        raise CifarkitError(
            f"{folder} does not load as a {fmt} export ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}); export the run again"
        ) from None
