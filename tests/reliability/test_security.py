"""Security: cifarkit runs no code it reads from files.

(a) models load with Keras ``safe_mode=True``: a ``.keras`` file with a Lambda layer is refused;
(b) YAML only through ``safe_load``: a ``!!python/...`` tag is refused and does not run;
(c) no ``eval``/``exec``/``pickle.load``/``yaml.load``/``extractall`` (and friends) in
    ``cifarkit/`` (an AST scan that resolves import aliases, so comments and docstrings
    do not count and ``from pickle import loads as l`` does);
(d) restricted unpickling refuses every global but NumPy's array reconstruction;
(e) archives are read member by member: traversal, absolute, link and device members are
    refused and nothing is written anywhere; nothing calls ``TarFile.extract*``;
(f) every ``numpy.load`` in ``cifarkit/`` passes ``allow_pickle=False``, and a pickled
    object array in the data cache is refused without running.
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from data_fixtures import Evil, malicious_pickle, png_bytes, tar_members, write_image_tree

from cifarkit.core.errors import CifarkitError, ConfigError, DataError
from cifarkit.data import load_cifar10
from cifarkit.data.safe_pickle import CifarUnpickler, load_pickle_batch, safe_load

PACKAGE = Path(__file__).resolve().parents[2] / "cifarkit"


# --------------------------------------------------------------------------- AST scanning


def _sources() -> list[Path]:
    files = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    assert len(files) > 10
    return files


class _Calls(ast.NodeVisitor):
    """Every call and attribute reference with its fully qualified name (aliases resolved)."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.calls: list[tuple[str, ast.Call]] = []
        self.names: list[tuple[str, ast.AST]] = []

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name.split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{node.module or ''}.{alias.name}"

    def qualname(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id, node.id)
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else f"?.{node.attr}"
        if isinstance(node, ast.Call | ast.Subscript):
            return "?"
        return None

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualname(node.func)
        if name:
            self.calls.append((name, node))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = self.qualname(node)
        if name:
            self.names.append((name, node))
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self.names.append((self.aliases.get(node.id, node.id), node))


def _scan(path: Path) -> _Calls:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    calls = _Calls()
    # Imports first (they may sit inside functions below their use in a file's order).
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            calls.visit_Import(node)
        elif isinstance(node, ast.ImportFrom):
            calls.visit_ImportFrom(node)
    calls.visit(tree)
    return calls


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"


def _keyword(call: ast.Call, name: str) -> Any:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else "<not a literal>"
    return "<missing>"


FORBIDDEN_CALLS = {
    "eval",
    "exec",
    "builtins.eval",
    "builtins.exec",
    "__import__",
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler.load",
    "_pickle.load",
    "_pickle.loads",
    "marshal.load",
    "marshal.loads",
    "shelve.open",
    "dill.load",
    "dill.loads",
    "joblib.load",
    "yaml.load",
    "yaml.load_all",
    "yaml.unsafe_load",
    "yaml.unsafe_load_all",
    "yaml.full_load",
    "yaml.full_load_all",
    "keras.config.enable_unsafe_deserialization",
    "os.system",
    "os.popen",
}
FORBIDDEN_NAMES = {
    "yaml.Loader",
    "yaml.UnsafeLoader",
    "yaml.FullLoader",
    "yaml.CLoader",
    "yaml.CUnsafeLoader",
    "yaml.CFullLoader",
}
FORBIDDEN_METHODS = {"extractall", "extract", "_extract_member"}  # TarFile/ZipFile extraction


def test_ast_scanner_sees_through_aliases(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import pickle as p\nfrom yaml import load as yl\nimport numpy as np\n"
        "def f(x, tar):\n    p.loads(x); yl(x); eval('1'); tar.extractall('.'); np.load(x)\n"
        "# eval(x) in a comment\n'''exec(x) in a docstring'''\n"
    )
    found = {name for name, _ in _scan(sample).calls}
    assert {"pickle.loads", "yaml.load", "eval", "tar.extractall", "numpy.load"} <= found
    assert "exec" not in found


def test_no_code_running_loaders_or_extraction_in_cifarkit() -> None:
    bad = []
    for path in _sources():
        scan = _scan(path)
        for name, call in scan.calls:
            method = name.rsplit(".", 1)[-1]
            if name in FORBIDDEN_CALLS or method in FORBIDDEN_METHODS:
                bad.append(f"{_where(path, call)}: {name}(...)")
            if _keyword(call, "shell") is True:
                bad.append(f"{_where(path, call)}: {name}(..., shell=True)")
        bad += [
            f"{_where(path, node)}: {name}" for name, node in scan.names if name in FORBIDDEN_NAMES
        ]
    assert bad == []


def test_yaml_is_only_read_with_safe_load() -> None:
    readers = []
    for path in _sources():
        for name, call in _scan(path).calls:
            if name.startswith("yaml.") and not name.startswith(("yaml.safe_", "yaml.YAMLError")):
                readers.append((f"{_where(path, call)}", name, ast.unparse(call)))
    # yaml.compose only builds nodes (never objects); config.py uses it with the SafeLoader
    # to find duplicate keys before safe_load.
    allowed = [r for r in readers if r[1] == "yaml.compose" and "Loader=yaml.SafeLoader" in r[2]]
    assert [r for r in readers if r not in allowed] == []


def test_numpy_load_always_refuses_pickles() -> None:
    loads = []
    for path in _sources():
        for name, call in _scan(path).calls:
            if name in ("numpy.load", "np.load"):
                loads.append((_where(path, call), _keyword(call, "allow_pickle")))
    assert loads, "expected cifarkit to read .npz files somewhere"
    assert [where for where, value in loads if value is not False] == []


def test_keras_models_load_in_safe_mode_only() -> None:
    loads = []
    for path in _sources():
        for name, call in _scan(path).calls:
            if name.endswith("load_model") and name.startswith(
                ("keras.", "tensorflow.", "tf.", "mlflow.")
            ):
                loads.append((_where(path, call), name, _keyword(call, "safe_mode")))
            assert _keyword(call, "safe_mode") in (True, "<missing>"), (
                f"{_where(path, call)}: safe_mode off"
            )
    assert loads, "expected cifarkit to load models somewhere"
    assert [entry for entry in loads if entry[2] is not True] == []


# --------------------------------------------------------------------------- (a) Keras safe_mode


def _lambda_model_file(path: Path) -> Path:
    import keras

    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Lambda(lambda x: x * 2.0, name="double")(inputs)
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.mark.slow
def test_run_refuses_a_model_with_a_lambda_layer(tmp_path: Path) -> None:
    import json

    from cifarkit.runs import Run

    run = Run(tmp_path / "resnet20-0123456789ab")
    run.path.mkdir()
    run.status_path.write_text(json.dumps({"status": "complete"}))
    _lambda_model_file(run.model_path)
    with pytest.raises(CifarkitError) as info:
        run.load_model()
    message = str(info.value)
    assert "Lambda" in message and "safe_mode=True" in message and "\n" not in message
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.slow
def test_keras_safe_mode_refuses_lambda_deserialisation(tmp_path: Path) -> None:
    import keras

    path = _lambda_model_file(tmp_path / "lambda.keras")
    with pytest.raises(ValueError, match="Lambda"):
        keras.models.load_model(path, safe_mode=True, compile=False)


# --------------------------------------------------------------------------- (b) YAML


YAML_PAYLOADS = [
    '!!python/object/apply:os.system ["touch {marker}"]',
    '!!python/object/apply:subprocess.check_call [["touch", "{marker}"]]',
    '!!python/object/new:os.system ["touch {marker}"]',
    "!!python/name:os.system",
]


@pytest.mark.parametrize("payload", YAML_PAYLOADS)
@pytest.mark.parametrize("where", ["experiment", "profile"])
def test_yaml_python_tags_are_refused_and_not_run(tmp_path: Path, payload: str, where: str) -> None:
    from cifarkit.core.config import load_config

    marker = tmp_path / "pwned"
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text(f"model: {{name: resnet20}}\ndescription: {payload.format(marker=marker)}\n")
    with pytest.raises(ConfigError, match="YAML tag not allowed") as info:
        if where == "experiment":
            load_config(tagged, None)
        else:
            load_config("resnet20", tagged)
    assert str(tagged) in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_yaml_tag_via_the_cli_is_one_line_and_does_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text(f'model: !!python/object/apply:os.system ["touch {marker}"]\n')
    result = subprocess.run(
        [sys.executable, "-m", "cifarkit.cli", "config", "show", str(tagged)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "YAML tag not allowed" in result.stderr
    assert not marker.exists()


def test_book_params_and_run_configs_use_safe_load(tmp_path: Path) -> None:
    from cifarkit.publish.toc import BuildError, parse_params
    from cifarkit.runs import Run

    marker = tmp_path / "pwned"
    with pytest.raises(BuildError):
        parse_params(f"""x='!!python/object/apply:os.system ["touch {marker}"]'""")
    run = Run(tmp_path / "run")
    run.path.mkdir()
    run.config_path.write_text(f'model: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(yaml.YAMLError):
        run.config()
    assert not marker.exists()


# --------------------------------------------------------------------------- (d) unpickling


class _Call:
    """Pickles as ``func(*args)``: what a malicious batch would run on load."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


def _payloads(marker: Path, protocol: int) -> dict[str, bytes]:
    import builtins

    command = f"touch {marker}"
    objects = {
        "os.system in a batch": {b"data": Evil(command), b"labels": [0]},
        "builtins.exec": {b"data": _Call(builtins.exec, f"open({str(marker)!r}, 'w')")},
        "builtins.eval": _Call(builtins.eval, f"open({str(marker)!r}, 'w')"),
        "subprocess.Popen": _Call(subprocess.Popen, command.split()),
        "getattr(__import__('os'), 'system')": _Call(
            getattr, _Call(builtins.__import__, "os"), "system"
        ),
        "numpy.load": _Call(np.load, str(marker)),
        "behind an allowed array": [np.zeros(3, np.uint8), Evil(command)],
    }
    return {label: pickle.dumps(obj, protocol=protocol) for label, obj in objects.items()}


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_restricted_unpickler_refuses_every_payload(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    for label, payload in _payloads(marker, protocol).items():
        with pytest.raises(DataError, match="refusing to unpickle") as info:
            safe_load(io.BytesIO(payload), f"batch ({label})")
        assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="refusing to unpickle posix.system"):
        load_pickle_batch(io.BytesIO(malicious_pickle(marker)), "data_batch_1")
    assert not marker.exists()


def test_restricted_unpickler_admits_only_numpy_reconstruction() -> None:
    from cifarkit.data import safe_pickle

    assert set(safe_pickle._ALLOWED) == {  # noqa: SLF001 - the allow-list is the contract
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
    assert CifarUnpickler.find_class is not pickle.Unpickler.find_class
    # _codecs.encode is allowed only as the latin-1 encoder protocol 2 uses for bytes.
    sneaky = pickle.dumps(_Call(__import__("_codecs").encode, "x", "rot13"), protocol=2)
    with pytest.raises(DataError):
        safe_load(io.BytesIO(sneaky), "batch")
    images = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    for protocol in (2, 4, 5):
        batch = pickle.dumps({b"data": images, b"labels": [1, 2]}, protocol=protocol)
        x, y = load_pickle_batch(io.BytesIO(batch), "batch")
        assert x.shape == (2, 32, 32, 3) and y.tolist() == [1, 2]


# --------------------------------------------------------------------------- (e) archives


def _member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def _tree_state(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


@pytest.mark.parametrize(
    ("label", "make_member", "message"),
    [
        ("dotdot", lambda t: ("images/../../../escaped.png", png_bytes()), "unsafe path"),
        ("dotdot-first", lambda t: ("../escaped.png", png_bytes()), "unsafe path"),
        ("absolute", lambda t: (str(t / "outside" / "abs.png"), png_bytes()), "unsafe path"),
        ("backslash-absolute", lambda t: ("\\evil.png", png_bytes()), "unsafe path"),
        ("drive", lambda t: ("C:/evil.png", png_bytes()), "unsafe path"),
        (
            "symlink",
            lambda t: _member("images/train/cat/001.png", tarfile.SYMTYPE, str(t / "outside")),
            "unsafe link",
        ),
        ("symlink-dir", lambda t: _member("images/test", tarfile.SYMTYPE, "/etc"), "unsafe link"),
        (
            "hardlink",
            lambda t: _member("images/train/cat/001.png", tarfile.LNKTYPE, "/etc/passwd"),
            "unsafe link",
        ),
        (
            "device",
            lambda t: _member("images/train/cat/001.png", tarfile.CHRTYPE),
            "unsafe special file",
        ),
        (
            "fifo",
            lambda t: _member("images/train/cat/001.png", tarfile.FIFOTYPE),
            "unsafe special file",
        ),
    ],
)
def test_unsafe_archive_members_are_refused_and_nothing_is_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    label: str,
    make_member: Any,
    message: str,
) -> None:
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    monkeypatch.chdir(work)
    good = [("images/train/cat/000.png", png_bytes()), ("images/test/cat/000.png", png_bytes())]
    archive = tar_members(tmp_path / f"{label}.tgz", [*good, make_member(tmp_path)])
    before = _tree_state(tmp_path)
    with pytest.raises(DataError, match=message):
        load_cifar10(archive, use_cache=False)
    with pytest.raises(DataError, match=message):  # and through the cache path
        load_cifar10(archive)
    after = _tree_state(tmp_path)
    assert after == before, f"written: {sorted(after - before)}"
    assert not Path("/evil.png").exists()
    cache = Path(os.environ["CIFARKIT_CACHE"])  # a refused archive leaves no file in the cache
    assert not cache.exists() or [p for p in cache.rglob("*") if p.is_file()] == []


def test_archives_are_read_without_extraction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from data_fixtures import tar_dir

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("cifarkit must not extract archives")

    for method in ("extract", "extractall", "_extract_member"):
        monkeypatch.setattr(tarfile.TarFile, method, refuse)
    expected = write_image_tree(tmp_path / "images")
    archive = tar_dir(tmp_path / "images", tmp_path / "images.tgz")
    monkeypatch.chdir(tmp_path)
    before = _tree_state(tmp_path)
    data = load_cifar10(archive, use_cache=False)
    assert data.x_train.shape == expected["x_train"].shape
    assert _tree_state(tmp_path) == before


def test_backup_with_traversal_member_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    from cifarkit.runs.backup import recover

    outside = tmp_path / "escaped.txt"
    backup = tmp_path / "backup.tgz"
    tar_members(
        backup, [("MANIFEST.sha256", b"0" * 64 + b"  ../escaped.txt\n"), ("../escaped.txt", b"x")]
    )
    artifacts = Path(os.environ["CIFARKIT_ARTIFACTS"])
    with pytest.raises(CifarkitError, match="unsafe path"):
        recover(backup)
    assert not outside.exists()
    assert not artifacts.exists()
    assert [
        p.name for p in artifacts.parent.iterdir() if p.name.startswith(f".{artifacts.name}")
    ] == []


# --------------------------------------------------------------------------- (f) numpy pickles


def test_pickled_object_array_in_the_data_cache_is_refused_unrun(tmp_path: Path) -> None:
    from cifarkit.data import cache

    marker = tmp_path / "pwned"
    target = cache.cache_file("f" * 64)
    target.parent.mkdir(parents=True, exist_ok=True)
    evil = np.empty(1, dtype=object)
    evil[0] = Evil(f"touch {marker}")
    with open(target, "wb") as fh:
        np.savez(
            fh,
            x_train=evil,
            y_train=evil,
            x_test=evil,
            y_test=evil,
            class_names=np.asarray(["a", "b"]),
            source_format=np.asarray("image-folder"),
        )
    assert cache.read_arrays(target) is None  # refused as damaged, and deleted
    assert not target.exists()
    assert not marker.exists()


def test_run_predictions_refuse_pickled_arrays(tmp_path: Path) -> None:
    import json

    from cifarkit.runs import Run

    marker = tmp_path / "pwned"
    run = Run(tmp_path / "run")
    run.path.mkdir()
    run.status_path.write_text(json.dumps({"status": "complete"}))
    evil = np.empty(1, dtype=object)
    evil[0] = Evil(f"touch {marker}")
    with open(run.predictions_path, "wb") as fh:
        np.savez(fh, logits=evil, labels=evil)
    with pytest.raises(
        CifarkitError, match=r"predictions.npz is unreadable \(ValueError: .*allow_pickle"
    ):
        run.predictions()
    assert not marker.exists()
