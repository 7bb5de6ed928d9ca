"""Bad-input corpus: every case is a real ``cifarkit`` process (``cifarkit book build`` included).

Each case runs ``[sys.executable, "-m", "cifarkit.cli", ...]`` (or ``-m cifarkit.cli book build``)
against a tmp artifacts folder that already holds a complete (fake) run, its lock file and a
decoded-data cache with its index. It must get:

* exit code 2 and no traceback;
* exactly one non-empty stderr line once TensorFlow/absl C++ log lines and cifarkit's own
  INFO progress lines are dropped, and that line names the problem (a distinctive
  substring per case) and how to fix it;
* nothing on stdout;
* an artifacts folder byte-identical before and after (every file hashed), except for the
  files a case lists in ``may_change`` (only the checkpoint case that needs a built model);
* for config, data and CLI cases: no TensorFlow/Keras import (checked by a
  ``sitecustomize`` that records heavy modules at exit);
* where a case carries a payload (a Python YAML tag, a pickle, archive members that point
  outside), the marker file it would create does not exist afterwards.

``book/reliability.md`` (the report's appendix page) is the table of these cases and the messages they get; every case
checks that its normalised message equals the table's. Regenerate the table from real runs
with ``CIFARKIT_WRITE_BAD_INPUTS_DOC=1 .venv/bin/python -m pytest
tests/reliability/test_bad_inputs.py::test_bad_input`` (rows of deselected cases are kept).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from data_fixtures import (
    malicious_pickle,
    png_bytes,
    tar_dir,
    tar_members,
    write_image_tree,
    write_official_archive,
    write_official_batches,
)
from train_fixtures import CLASSES, tiny_experiment, tiny_image_tree

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "book" / "reliability.md"
WRITE_DOC_ENV = "CIFARKIT_WRITE_BAD_INPUTS_DOC"
OFFICIAL_MD5 = "c58f30108f718f92721af3b95e74349a"

TF_NOISE = ("I0000", "W0000", "E0000", "WARNING: All log messages", "To enable the following")
# INFO progress lines: cifarkit's log format (the book build's included), and MLflow's own (it sets its
# logger up on import, e.g. "Creating initial MLflow database tables...").
PROGRESS = re.compile(r"^(\d{4}/\d\d/\d\d )?\d\d:\d\d:\d\d (DEBUG|INFO) ")
HEAVY = ("tensorflow", "keras")

SITECUSTOMIZE = """\
import atexit, os, sys
_out = os.environ.get("CIFARKIT_TEST_IMPORTS")
if _out:
    def _record():
        with open(_out, "w") as fh:
            fh.write(" ".join(m for m in ("tensorflow", "keras", "mlflow", "papermill") if m in sys.modules))
    atexit.register(_record)
"""


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    group: str  # config | data | checkpoint | cli
    what: str  # the bad input, in words (for the docs table)
    argv: tuple[str, ...]  # after the program; {in}, {good}, {tiny_cfg} are filled in
    expect: str  # a distinctive substring of the error line
    program: str = "cifarkit"  # or "cifarkit book build"
    env: tuple[tuple[str, str], ...] = ()
    marker: str | None = None  # a file the payload would create (must not exist afterwards)
    craft: str | None = None  # checkpoint to craft into the run folder first (slow cases)
    seed: int = 0
    may_change: tuple[
        str, ...
    ] = ()  # artifacts paths (fnmatch, {run} = crafted run) allowed to change

    @property
    def slow(self) -> bool:
        return self.craft is not None


def _cfg(
    case_id: str, what: str, file: str, expect: str, *, profile: str = "none", **kw: Any
) -> Case:
    return Case(
        case_id,
        "config",
        what,
        ("config", "show", f"{{in}}/{file}", "--profile", profile),
        expect,
        **kw,
    )


def _data(case_id: str, what: str, source: str, expect: str, **kw: Any) -> Case:
    return Case(
        case_id, "data", what, ("data", "info", "--source", f"{{in}}/{source}"), expect, **kw
    )


_CKPT_CHANGES = (
    "runs/{run}/config.yaml",
    "runs/{run}/env.json",
    "runs/{run}/mlflow.json",
    "runs/{run}/status.json",
    "mlflow.db",
    "mlflow-artifacts/*",
)

CASES: tuple[Case, ...] = (
    # ------------------------------------------------------------------ configs
    _cfg("malformed-yaml", "unclosed `{` in YAML", "malformed.yaml", "malformed YAML at line"),
    _cfg(
        "unknown-key",
        "misspelt key `train.epoch`",
        "unknown_key.yaml",
        "train.epoch: unknown key; allowed keys here: epochs",
    ),
    _cfg(
        "wrong-type",
        "`batch_size: lots`",
        "wrong_type.yaml",
        "train.batch_size = 'lots': Input should be a valid integer",
    ),
    _cfg(
        "out-of-range",
        "`dropout: 1.5`",
        "out_of_range.yaml",
        "model.dropout = 1.5: Input should be less than 1",
    ),
    _cfg(
        "unknown-model",
        "`model.name: resnet21`",
        "unknown_model.yaml",
        "model.name = 'resnet21': Input should be 'baseline_cnn'",
    ),
    _cfg(
        "missing-file", "config path that does not exist", "missing.yaml", "config file not found"
    ),
    _cfg(
        "warmup-ge-epochs",
        "warm-up as long as the run",
        "warmup.yaml",
        "warmup_epochs=5.0 must be below epochs=5",
    ),
    _cfg(
        "step-no-milestones",
        "step schedule without `step_epochs`",
        "step.yaml",
        "schedule 'step' needs step_epochs",
    ),
    _cfg(
        "step-beyond-epochs",
        "step milestone after the last epoch",
        "step_beyond.yaml",
        "schedule.step_epochs [12] fall outside 1..epochs-1=9",
    ),
    _cfg(
        "imagenet-on-resnet20",
        "ImageNet weights on a CIFAR ResNet",
        "imagenet.yaml",
        "weights='imagenet' needs a keras.applications backbone, not 'resnet20'",
    ),
    _cfg(
        "input-size-on-resnet20",
        "`input_size: 64` on a CIFAR ResNet",
        "input_size.yaml",
        "model.input_size = 64: only keras.applications backbones use it",
    ),
    _cfg("empty-file", "empty experiment file", "empty.yaml", "the experiment file is empty"),
    _cfg(
        "top-level-list",
        "a YAML list instead of a mapping",
        "list.yaml",
        "top level must be a mapping of keys, got list",
    ),
    _cfg(
        "duplicate-key",
        "`train:` given twice (YAML keeps the last silently)",
        "duplicate.yaml",
        "key train appears twice (lines 2 and 4)",
    ),
    _cfg("non-utf8", "Latin-1 bytes in the file", "latin1.yaml", "cannot read config"),
    _cfg(
        "python-tag",
        "`!!python/object/apply:os.system` tag",
        "python_tag.yaml",
        "YAML tag not allowed",
        marker="pwned-by-yaml",
    ),
    Case(
        "unknown-experiment",
        "config",
        "experiment name with no file",
        ("config", "show", "nope"),
        "unknown experiment 'nope'; choose one of: airbench, baseline_cnn, resnet20",
    ),
    Case(
        "unknown-profile",
        "config",
        "profile name with no file",
        ("config", "show", "resnet20", "--profile", "gpu"),
        "unknown profile 'gpu'; choose one of: cpu",
    ),
    Case(
        "profile-bad-key",
        "config",
        "profile file with a misspelt key",
        ("config", "show", "resnet20", "--profile", "{in}/typo_profile.yaml"),
        "typo_profile.yaml: train.epohcs: unknown key",
    ),
    Case(
        "profile-renames",
        "config",
        "profile that sets `name`",
        ("config", "show", "resnet20", "--profile", "{in}/rename_profile.yaml"),
        "a profile cannot rename the experiment",
    ),
    # ------------------------------------------------------------------ data
    _data(
        "missing-folder",
        "data folder that does not exist",
        "no-such-folder",
        "no-such-folder (from data.source) does not exist",
    ),
    Case(
        "missing-env-source",
        "data",
        "CIFARKIT_DATA names a missing file",
        ("data", "info"),
        "no-such.tgz (from CIFARKIT_DATA) does not exist",
        env=(("CIFARKIT_DATA", "{in}/no-such.tgz"),),
    ),
    _data("empty-class-folder", "class folder without images", "empty_class", "empty class folder"),
    _data(
        "undecodable-image",
        "`.png` that is not an image",
        "undecodable",
        "test/dog/001.png: cannot decode image",
    ),
    _data(
        "wrong-image-size",
        "40x30 image",
        "wrong_size",
        "train/cat/001.png: image is 40x30, expected 32x32",
    ),
    _data(
        "truncated-archive", "`.tgz` cut in half", "truncated.tgz", "truncated or corrupt archive"
    ),
    _data(
        "not-an-archive", "random bytes named `.tgz`", "garbage.tgz", "truncated or corrupt archive"
    ),
    _data(
        "md5-mismatch",
        "official archive name, other bytes",
        "cifar-10-python.tar.gz",
        f"does not match the official cifar-10-python.tar.gz MD5 {OFFICIAL_MD5}",
    ),
    _data(
        "malicious-pickle",
        "batch whose unpickling runs `os.system`",
        "evil_batches",
        "refusing to unpickle posix.system",
        marker="pwned-by-pickle",
    ),
    _data("corrupt-pickle", "batch file cut short", "short_batches", "not a readable CIFAR pickle"),
    _data(
        "missing-batch",
        "official folder without `test_batch`",
        "no_test_batch",
        "missing test_batch",
    ),
    _data(
        "archive-dotdot",
        "archive member `images/../../escaped.png`",
        "dotdot.tgz",
        "unsafe path in archive",
        marker="cwd/escaped.png",
    ),
    _data(
        "archive-absolute",
        "archive member with an absolute path",
        "absolute.tgz",
        "is absolute or contains '..'",
        marker="absolute-escaped.png",
    ),
    _data(
        "archive-symlink",
        "archive member that is a symlink",
        "symlink.tgz",
        "unsafe link in archive",
    ),
    _data(
        "archive-hardlink",
        "archive member that is a hard link",
        "hardlink.tgz",
        "unsafe link in archive",
    ),
    _data(
        "archive-device",
        "archive member that is a device",
        "device.tgz",
        "unsafe special file in archive",
    ),
    _data("missing-test-split", "tree with `train/` only", "no_test", "missing split folder test/"),
    _data(
        "no-split-folders",
        "folder without `train/` and `test/`",
        "no_splits",
        "no train/ and test/ split folders found",
    ),
    _data(
        "unequal-class-counts",
        "one class short of an image",
        "unequal",
        "unequal per-class counts in",
    ),
    _data(
        "empty-image-file",
        "0-byte `.png` beside a class's images",
        "empty_image",
        "train/dog/004.png is empty (0 bytes)",
    ),
    _data(
        "stray-class-folder",
        "`train/unicorn/` that `test/` lacks",
        "stray_class",
        "unexpected class folder",
    ),
    _data(
        "different-classes",
        "class in train/ missing from test/",
        "different_classes",
        "train/ and test/ hold different classes",
    ),
    _data(
        "unsupported-file", "a `.txt` file as the source", "notes.txt", "unsupported data source"
    ),
    # ------------------------------------------------------------------ checkpoints (slow)
    Case(
        "checkpoint-truncated",
        "checkpoint",
        "`model.keras` of the checkpoint cut in half",
        ("train", "{tiny_cfg}", "--profile", "none", "--seed", "0", "--no-register"),
        "is truncated or corrupt",
        craft="truncated",
        seed=0,
    ),
    Case(
        "checkpoint-other-architecture",
        "checkpoint",
        "a ResNet20 checkpoint in a baseline CNN run",
        ("train", "{tiny_cfg}", "--profile", "none", "--seed", "1", "--no-register"),
        "holds a 'resnet20' model, this run builds 'baseline_cnn'",
        craft="resnet20",
        seed=1,
        may_change=_CKPT_CHANGES,
    ),
    Case(
        "checkpoint-other-shapes",
        "checkpoint",
        "baseline CNN checkpoint with 3 classes, run has 10",
        ("train", "{tiny_cfg}", "--profile", "none", "--seed", "2", "--no-register"),
        "does not fit this 'baseline_cnn' model",
        craft="three_classes",
        seed=2,
        may_change=_CKPT_CHANGES,
    ),
    # ------------------------------------------------------------------ CLI
    Case(
        "train-unknown-experiment",
        "cli",
        "`train` with an unknown experiment",
        ("train", "nope"),
        "unknown experiment 'nope'",
    ),
    Case(
        "seed-negative",
        "cli",
        "`--seed -1`",
        ("train", "resnet20", "--seed", "-1"),
        "seed must be in 0..2147483647, got -1",
    ),
    Case(
        "seed-not-a-number",
        "cli",
        "`--seed x`",
        ("train", "resnet20", "--seed", "x"),
        "seed must be a non-negative integer, got 'x'",
    ),
    Case("unknown-subcommand", "cli", "`cifarkit nope`", ("nope",), "invalid choice: 'nope'"),
    Case(
        "remote-missing",
        "cli",
        "`remote pull` from a folder that does not exist",
        ("remote", "pull", "--remote", "file://{in}/no-such-store"),
        "does not exist",
    ),
    Case(
        "train-missing-data",
        "cli",
        "`train` while CIFARKIT_DATA names a missing folder",
        ("train", "resnet20", "--profile", "smoke", "--seed", "0"),
        "(from CIFARKIT_DATA) does not exist",
        env=(("CIFARKIT_DATA", "{in}/no-such-folder"),),
    ),
    Case(
        "unknown-chapter",
        "cli",
        "book build of a chapter that does not exist",
        ("--profile", "smoke", "--chapter", "nope"),
        "unknown chapter 'nope'; chapters are:",
        program="cifarkit book build",
        env=(("CIFARKIT_DATA", "{good}"),),
    ),
    Case(
        "book-unknown-profile",
        "cli",
        "book build with an unknown profile",
        ("--profile", "gpu"),
        "unknown profile 'gpu'",
        program="cifarkit book build",
        env=(("CIFARKIT_DATA", "{good}"),),
    ),
    Case(
        "params-not-key-value",
        "cli",
        "`--params oops`",
        ("--profile", "smoke", "--chapter", "data", "--params", "oops"),
        "'oops' is not name=value",
        program="cifarkit book build",
        env=(("CIFARKIT_DATA", "{good}"),),
    ),
    Case(
        "params-without-chapter",
        "cli",
        "`--params` without `--chapter`",
        ("--profile", "smoke", "--params", "seeds=5"),
        "--params needs --chapter NAME",
        program="cifarkit book build",
        env=(("CIFARKIT_DATA", "{good}"),),
    ),
    Case(
        "params-unknown-name",
        "cli",
        "`--params` naming a parameter the chapter lacks",
        ("--profile", "smoke", "--chapter", "data", "--params", "nosuch=1"),
        "chapter data has no parameter(s) nosuch; it accepts:",
        program="cifarkit book build",
        env=(("CIFARKIT_DATA", "{good}"),),
    ),
)

PROGRAMS = {
    "cifarkit": ("-m", "cifarkit.cli"),
    "cifarkit book build": ("-m", "cifarkit.cli", "book", "build"),
}


# --------------------------------------------------------------------------- the world


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _config_inputs(inputs: Path, base: Path) -> None:
    files = {
        "malformed.yaml": "model: {name: resnet20\ntrain: {epochs: 3}\n",
        "unknown_key.yaml": "model: {name: resnet20}\ntrain: {epoch: 3}\n",
        "wrong_type.yaml": "model: {name: resnet20}\ntrain: {batch_size: lots}\n",
        "out_of_range.yaml": "model: {name: resnet20, dropout: 1.5}\n",
        "unknown_model.yaml": "model: {name: resnet21}\n",
        "warmup.yaml": "model: {name: resnet20}\ntrain: {epochs: 5, schedule: {warmup_epochs: 5}}\n",
        "step.yaml": "model: {name: resnet20}\ntrain: {schedule: {name: step}}\n",
        "step_beyond.yaml": "model: {name: resnet20}\n"
        "train: {epochs: 10, schedule: {name: step, step_epochs: [5, 12]}}\n",
        "imagenet.yaml": "model: {name: resnet20, weights: imagenet}\n",
        "input_size.yaml": "model: {name: resnet20, input_size: 64}\n",
        "empty.yaml": "",
        "list.yaml": "- model\n- train\n",
        "duplicate.yaml": "model: {name: resnet20}\ntrain:\n  epochs: 3\ntrain:\n  batch_size: 64\n",
        "python_tag.yaml": f'model: !!python/object/apply:os.system ["touch {base}/pwned-by-yaml"]\n',
        "typo_profile.yaml": "train: {epohcs: 1}\n",
        "rename_profile.yaml": "name: other\n",
    }
    for name, text in files.items():
        _write(inputs / name, text)
    _write(inputs / "latin1.yaml", "model: {name: r\u00e9snet20}\n".encode("latin-1"))


def _tree(inputs: Path, name: str) -> Path:
    root = inputs / name
    write_image_tree(root)  # classes cat, dog, frog; 4 train + 2 test each
    return root


def _member(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def _data_inputs(inputs: Path, base: Path) -> None:
    png = png_bytes()
    shutil.rmtree(_tree(inputs, "empty_class") / "train" / "dog")
    (inputs / "empty_class" / "train" / "dog").mkdir()
    (_tree(inputs, "undecodable") / "test" / "dog" / "001.png").write_bytes(b"this is not a png")
    (_tree(inputs, "wrong_size") / "train" / "cat" / "001.png").write_bytes(png_bytes((40, 30)))
    shutil.rmtree(_tree(inputs, "no_test") / "test")
    (_tree(inputs, "unequal") / "train" / "dog" / "003.png").unlink()
    _write(_tree(inputs, "empty_image") / "train" / "dog" / "004.png", b"")
    stray = _tree(inputs, "stray_class") / "train" / "unicorn"
    stray.mkdir()
    for name in ("000.png", "001.png"):
        shutil.copy(inputs / "stray_class" / "train" / "cat" / name, stray / name)
    shutil.rmtree(_tree(inputs, "different_classes") / "test" / "frog")
    _write(inputs / "no_splits" / "README.txt", "photos go here\n")
    _write(inputs / "notes.txt", "not data\n")
    _write(inputs / "garbage.tgz", bytes(range(256)) * 8)

    full = tar_dir(_tree(inputs, "tree_for_archive"), inputs / "full.tgz", arcname="images")
    payload = full.read_bytes()
    _write(inputs / "truncated.tgz", payload[: len(payload) // 2])
    write_official_archive(inputs / "cifar-10-python.tar.gz")

    write_official_batches(inputs / "evil_batches")
    (inputs / "evil_batches" / "data_batch_2").write_bytes(
        malicious_pickle(base / "pwned-by-pickle")
    )
    write_official_batches(inputs / "short_batches")
    batch = inputs / "short_batches" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:500])
    write_official_batches(inputs / "no_test_batch")
    (inputs / "no_test_batch" / "test_batch").unlink()

    good = [("images/train/cat/000.png", png), ("images/test/cat/000.png", png)]
    tar_members(inputs / "dotdot.tgz", [*good, ("images/../../escaped.png", png)])
    tar_members(inputs / "absolute.tgz", [*good, (str(base / "absolute-escaped.png"), png)])
    tar_members(
        inputs / "symlink.tgz",
        [*good, _member("images/train/cat/001.png", tarfile.SYMTYPE, "/etc/passwd")],
    )
    tar_members(
        inputs / "hardlink.tgz",
        [*good, _member("images/train/cat/001.png", tarfile.LNKTYPE, "images/train/cat/000.png")],
    )
    tar_members(
        inputs / "device.tgz", [*good, _member("images/train/cat/001.png", tarfile.CHRTYPE)]
    )


def _fake_complete_run(artifacts: Path) -> None:
    """A finished run as the run store writes it (contents are stand-ins, never loaded here)."""
    run = artifacts / "runs" / "resnet20-0123456789ab"
    record = {
        "status": "complete",
        "experiment": "resnet20",
        "profile": "smoke",
        "seed": 0,
        "test_accuracy": 0.5,
        "train_seconds": 12.0,
    }
    _write(run / "status.json", json.dumps(record))
    _write(run / "metrics.json", json.dumps({"test_accuracy": 0.5}))
    _write(run / "history.json", json.dumps([{"epoch": 1, "val_accuracy": 0.4}]))
    _write(run / "history.csv", "epoch,val_accuracy\n1,0.4\n")
    _write(run / "config.yaml", "name: resnet20\nmodel: {name: resnet20}\n")
    _write(run / "env.json", json.dumps({"python": sys.version}))
    _write(run / "model.keras", b"PK\x05\x06" + bytes(18))  # an empty zip
    buffer = io.BytesIO()
    np.savez(buffer, logits=np.zeros((10, 10), np.float32), labels=np.arange(10))
    _write(run / "predictions.npz", buffer.getvalue())
    _write(artifacts / "runs" / "resnet20-0123456789ab.lock", b"")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Inputs of every case, plus an artifacts folder holding a complete run and a data cache."""
    from cifarkit.core.config import load_config
    from cifarkit.data import load_cifar10
    from cifarkit.data.identity import data_hash_for

    base = tmp_path_factory.mktemp("bad-inputs")
    inputs, artifacts = base / "inputs", base / "artifacts"
    _config_inputs(inputs, base)
    _data_inputs(inputs, base)
    good = _tree(inputs, "good")
    tiny = tiny_image_tree(inputs / "tiny")
    tiny_cfg = tiny_experiment(inputs, tiny, epochs=2)
    _fake_complete_run(artifacts)
    with pytest.MonkeyPatch.context() as mp:  # the decoded-data cache, built by cifarkit itself
        mp.setenv("CIFARKIT_ARTIFACTS", str(artifacts))
        mp.setenv("CIFARKIT_CACHE", str(artifacts / "cache"))
        load_cifar10(good)
        load_cifar10(tiny)
        data_hash_for(load_config(tiny_cfg, None).data)
    _write(base / "site" / "sitecustomize.py", SITECUSTOMIZE)
    (base / "cwd" / "work").mkdir(parents=True)
    WORLD.update(base=base, inputs=inputs, artifacts=artifacts, good=good, tiny_cfg=tiny_cfg)
    return WORLD


# --------------------------------------------------------------------------- helpers


def snapshot(root: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every file (``<dir>``/``-> target`` for folders/links)."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            path = Path(folder, name)
            found[path.relative_to(root).as_posix()] = "<dir>"
        for name in files:
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[rel] = f"-> {os.readlink(path)}"
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def fill(text: str, world: dict[str, Path]) -> str:
    return text.format(**{"in": str(world["inputs"])}, **{k: str(v) for k, v in world.items()})


def error_lines(stderr: str) -> list[str]:
    """stderr without TF/absl C++ lines and cifarkit INFO progress lines."""
    return [
        line
        for line in stderr.splitlines()
        if line.strip() and not line.startswith(TF_NOISE) and not PROGRESS.match(line)
    ]


def normalise(text: str, world: dict[str, Path]) -> str:
    """A message as the docs show it: tmp and checkout paths, file MD5s and run hashes replaced."""
    base = world["base"]
    for path, label in ((base.resolve(), "<tmp>"), (base, "<tmp>"), (REPO, "<repo>")):
        text = text.replace(str(path), label)
    text = re.sub(rf"\b(?!{OFFICIAL_MD5})[0-9a-f]{{32}}\b", "<md5>", text)
    return re.sub(r"\b([A-Za-z0-9_.]+)-[0-9a-f]{12}\b", r"\1-<hash12>", text)


def run_case(
    case: Case, world: dict[str, Path], imports_file: Path
) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CIFARKIT_DATA", "CIFARKIT_CONFIGS", "MLFLOW_TRACKING_URI")
    }
    env.update(
        CIFARKIT_ARTIFACTS=str(world["artifacts"]),
        CIFARKIT_CACHE=str(world["artifacts"] / "cache"),
        CIFARKIT_TEST_IMPORTS=str(imports_file),
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(world["base"] / "site"), env.get("PYTHONPATH")])
        ),
    )
    env.update({k: fill(v, world) for k, v in case.env})
    argv = [sys.executable, *PROGRAMS[case.program], *(fill(a, world) for a in case.argv)]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=env,
        cwd=world["base"] / "cwd" / "work",
        timeout=600 if case.slow else 180,
    )


def shown_command(case: Case, world: dict[str, Path]) -> str:
    env = " ".join(f"{k}={normalise(fill(v, world), world)}" for k, v in case.env)
    args = " ".join(normalise(fill(a, world), world) for a in case.argv)
    return " ".join(filter(None, [env, case.program, args]))


# --------------------------------------------------------------------------- checkpoints


def craft_checkpoint(case: Case, world: dict[str, Path]) -> str:
    """Save a bad checkpoint into the run folder ``cifarkit train`` will resume; return its name."""
    from cifarkit.core.config import ModelConfig, load_config
    from cifarkit.data.identity import data_hash_for
    from cifarkit.models import build_model
    from cifarkit.runs import locate
    from cifarkit.training.checkpoint import CheckpointManager
    from cifarkit.training.recipe import compile_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CIFARKIT_ARTIFACTS", str(world["artifacts"]))
        mp.setenv("CIFARKIT_CACHE", str(world["artifacts"] / "cache"))
        cfg = load_config(world["tiny_cfg"], None)
        run = locate(cfg, case.seed, data_hash_for(cfg.data))
    classes = CLASSES[:3] if case.craft == "three_classes" else CLASSES
    # In the precision the run resolves to here (bfloat16 on a CPU that has it), so that what is
    # wrong with the checkpoint is its architecture or shapes, not its precision.
    import keras

    from cifarkit.training.fit import configure_precision

    configure_precision(cfg)
    try:
        model = build_model(
            ModelConfig(name="resnet20") if case.craft == "resnet20" else cfg.model,
            num_classes=len(classes),
        )
        compile_model(model, cfg.train, steps_per_epoch=7)
        model.optimizer.build(model.trainable_variables)  # as after an epoch: momenta exist
        folder = CheckpointManager(run.path / "checkpoint").save(
            model, 1, {"history": [{"epoch": 1, "loss": 2.3}], "train_seconds": 1.0}
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    if case.craft == "truncated":
        keras_file = folder / "model.keras"
        keras_file.write_bytes(keras_file.read_bytes()[: keras_file.stat().st_size // 2])
    run.lock_path.touch()  # an interrupted run leaves its lock file behind
    return run.path.name


# --------------------------------------------------------------------------- the docs table


RECORDED: dict[str, tuple[int, str]] = {}
WORLD: dict[str, Path] = {}  # the module's world, for the docs writer at teardown


def documented() -> dict[str, str]:
    """``case id -> message`` from the table in book/reliability.md."""
    rows = {}
    if DOC.exists():
        for line in DOC.read_text().splitlines():
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if len(cells) == 6 and cells[0].startswith("`") and cells[0] != "`id`":
                rows[cells[0].strip("`")] = _unquote(cells[5])
    return rows


def _quote(text: str) -> str:
    """A markdown code span holding ``text`` verbatim (pipes escaped for the table)."""
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def _unquote(cell: str) -> str:
    cell = cell.replace("\\|", "|")
    fence = re.match(r"`+", cell)
    if not fence:
        return cell
    inner = cell[len(fence.group()) : -len(fence.group())]
    return (
        inner[1:-1] if inner.startswith(" ") and inner.endswith(" ") and len(inner) > 1 else inner
    )


def write_doc(world: dict[str, Path]) -> None:
    previous = documented()
    rows = []
    for case in CASES:
        if case.id in RECORDED:
            message = RECORDED[case.id][1]
        elif case.id in previous:
            message = previous[case.id]
        else:
            continue
        rows.append(
            f"| `{case.id}` | {case.group} | {case.what} | {_quote(shown_command(case, world))} "
            f"| 2 | {_quote(message)} |"
        )
    text = DOC_HEAD + "\n".join(rows) + "\n" + DOC_TAIL
    DOC.write_text(text)


DOC_HEAD = """\
# Appendix: faults and bad inputs

## What cifarkit guarantees under faults

Each guarantee is checked by a test in `tests/reliability/` that `make test` runs in CI.

- **A training run killed at any moment** (SIGKILL included, during an epoch, a
  checkpoint write or the final writes) resumes from its last finished epoch when the same
  command is run again, and ends with the same metrics and test logits as an
  uninterrupted run. A killed run is never taken for complete: `status.json` says
  `complete` only after every other file is written.
- **Checkpoints are atomic**: each epoch is written into a fresh folder and a pointer file
  is renamed onto it last, so a crash leaves the previous checkpoint or the new one.
  A full disk during a checkpoint write gives one line naming the folder, leaves the
  previous checkpoint intact, and the same command resumes once space is freed.
- **Caches are never half-used**: the decoded-data cache is written to a temp file and
  renamed; an executed chapter notebook is published (with its cache key, written last)
  only when papermill finished it without error. A build killed mid-chapter re-executes
  that chapter next time and reuses the others.
- **Concurrency**: two processes asking for the same run never both train it (an `fcntl`
  lock, released by the kernel if the holder dies); the second waits, or with
  `--no-wait` exits with one line. Different runs train side by side. Two book builds
  at once take turns on the executed-notebook cache.
- **Nothing untrusted is executed**: YAML only through `safe_load`, models only with
  Keras `safe_mode=True`, CIFAR pickles through an unpickler that admits only NumPy
  arrays, archives read member by member with unsafe names and links refused, `numpy.load`
  never with pickles, and no `eval`/`exec` anywhere in `cifarkit/` (an AST scan checks).

## Bad inputs and the messages they get

cifarkit refuses bad input with **one line** on stderr that names the problem and the fix,
**exit code 2**, **no traceback**, and **without touching existing runs and caches**. The
table below is the corpus of `tests/reliability/test_bad_inputs.py`: every row is run as a
real process against an artifacts folder that holds a complete run, its lock file and a
decoded-data cache, and the test checks, for each row:

- exit code 2, no `Traceback`, nothing on stdout;
- exactly one stderr line once TensorFlow's C++ start-up lines and cifarkit's own `INFO`
  progress lines are set aside, containing the text that names the problem;
- every file under the artifacts folder hashes the same before and after (the only
  exception is noted below);
- config, data and CLI errors do not import TensorFlow or Keras (they fail in about a
  second);
- inputs that carry a payload (a Python YAML tag, a pickle that calls `os.system`, archive
  members pointing outside the archive) did not run or write anything: the file the payload
  would create does not exist afterwards.

The messages are the real ones, copied from those runs (`<tmp>` is the test's temporary
folder, `<repo>` the checkout, `<md5>` an MD5 that depends on the test file's bytes,
`<hash12>` a run hash). The test compares each row with what the command prints, so this
table cannot drift from the code; regenerate it with
`CIFARKIT_WRITE_BAD_INPUTS_DOC=1 .venv/bin/python -m pytest tests/reliability/test_bad_inputs.py::test_bad_input`.

| id | kind | bad input | command | exit | message |
|---|---|---|---|---|---|
"""

DOC_TAIL = """
## Notes

- **Argument errors** (`seed-negative`, `seed-not-a-number`, `unknown-subcommand`) are
  reported by argparse as one line too (cifarkit's parser prints no usage block on an
  error; `--help` shows it).
- **Checkpoints**: a truncated or unreadable checkpoint is caught before anything is
  written. A checkpoint that is readable but does not fit the model (another
  architecture, other shapes) is only found when the model is built and the weights are
  loaded; by then the run's own bookkeeping files (`config.yaml`, `env.json`,
  `mlflow.json`, `status.json`, now `failed`) and the MLflow store have recorded the
  attempt. The checkpoint itself, every other run and the data cache stay byte-identical.
- **Data**: a source that fails to decode leaves no trace in the cache: its content hash
  is only added to the cache index, and its cache lock file only kept, once it decodes.
- **Progress lines**: commands that get as far as loading data or starting a run log
  `INFO` lines first (`hashing ...`, `resuming ...`; MLflow's own `Creating initial MLflow
  database tables...` the first time its store is created). They are progress, not
  errors, and `-q` hides cifarkit's; the error itself is always the one last line.
"""


@pytest.fixture(scope="module", autouse=True)
def _doc_writer():
    yield
    if os.environ.get(WRITE_DOC_ENV) and RECORDED and WORLD:
        write_doc(WORLD)


# --------------------------------------------------------------------------- the tests


def _params(cases: tuple[Case, ...]) -> list[Any]:
    return [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else []) for c in cases]


def test_corpus_is_large_and_ids_unique() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    groups = {c.group for c in CASES}
    assert groups == {"config", "data", "checkpoint", "cli"}


def test_docs_table_lists_every_case() -> None:
    rows = documented()
    assert [c.id for c in CASES if c.id not in rows] == [], f"regenerate {DOC}"
    assert [r for r in rows if r not in {c.id for c in CASES}] == [], f"stale rows in {DOC}"


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_input(case: Case, world: dict[str, Path], tmp_path: Path) -> None:
    may_change: tuple[str, ...] = ()
    if case.craft:
        run_name = craft_checkpoint(case, world)
        may_change = tuple(p.format(run=run_name) for p in case.may_change)
    before = snapshot(world["artifacts"])
    imports_file = tmp_path / "imports.txt"
    result = run_case(case, world, imports_file)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip() == "", result.stdout
    lines = error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert "error: " in line and case.expect in line, line

    diff = [
        p
        for p in changed(before, snapshot(world["artifacts"]))
        if not any(fnmatch.fnmatch(p, pattern) for pattern in may_change)
    ]
    assert diff == [], f"artifacts changed: {diff}"
    if case.marker:
        assert not (world["base"] / case.marker).exists(), "the payload ran"
    assert not (world["base"] / "cwd" / "escaped.png").exists()
    heavy = imports_file.read_text().split() if imports_file.exists() else []
    if not case.slow:
        assert imports_file.exists(), "the import probe did not run"
        assert not set(heavy) & set(HEAVY), f"a {case.group} error imported {heavy}"

    message = normalise(line, world)
    RECORDED[case.id] = (result.returncode, message)
    if not os.environ.get(WRITE_DOC_ENV):
        assert documented().get(case.id) == message, f"{DOC} is stale for {case.id}; regenerate it"
