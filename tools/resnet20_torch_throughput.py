"""Same-machine reference for ResNet20: the same network and training step in PyTorch, training img/s on CPU.

``cifarkit bench throughput resnet20`` times cifarkit's ResNet20 (Keras 3 on TensorFlow). This
script times the same network, loss and optimizer step written in PyTorch on *this* machine,
the way that command's column (a) does (one synthetic batch of 128 fed over and over, warm-up
steps untimed, median and range over repeats), so the two img/s figures compare frameworks,
not machines.

Needs PyTorch, which cifarkit does not depend on (run it from a separate venv):

    python3.11 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch numpy
    /tmp/torchref/bin/python tools/resnet20_torch_throughput.py [--channels-last] [--bf16]

It writes ``artifacts/bench/throughput-resnet20-torch[-cl][-bf16].json`` under cifarkit's
artifacts folder (``CIFARKIT_ARTIFACTS`` overrides it, ``--json`` changes the file), in the
form of ``cifarkit bench throughput``'s files and with the CPU it ran on, so the fast-training
chapter can put the figures side by side (and refuses to when the CPUs differ).

The network follows ``cifarkit/models/resnet.py``: He et al. (2016, section 4.2) with option-A
shortcuts (strided subsampling and zero channel padding, no parameters), widths 16/32/64,
3 basic blocks per stage, BatchNorm momentum 0.9 (torch's 0.1) and epsilon 1e-5, input
normalisation with cifarkit's channel means and deviations as the first layer, global average
pooling and a dense layer with bias. The step follows ``configs/resnet20.yaml``: SGD Nesterov,
momentum 0.9, lr 0.2, coupled weight decay 5e-4 on conv and dense kernels only (cifarkit's
``L2(wd / 2)`` kernel regularisers), cross-entropy with label smoothing 0.1. The learning-rate
schedule is left out: it changes one scalar per step, not the work done.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# cifarkit.core.paths, cifarkit.core.repro and cifarkit.core.atomic need only the standard library
# and NumPy, so they are imported from the checkout: this venv has PyTorch, not cifarkit's pinned
# environment.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cifarkit.core.atomic import write_json  # noqa: E402
from cifarkit.core.paths import artifacts_dir  # noqa: E402

# cifarkit.models.common's constants (that module imports Keras, so they are repeated here).
CIFAR_MEAN = (125.3, 123.0, 113.9)
CIFAR_STD = (63.0, 62.1, 66.7)
BN_MOMENTUM, BN_EPSILON = 0.1, 1e-5  # Keras momentum 0.9 is torch momentum 0.1
WIDTHS, BLOCKS, NUM_CLASSES = (16, 32, 64), 3, 10
BATCH = 128
LR, MOMENTUM, WD, LABEL_SMOOTHING = 0.2, 0.9, 5e-4, 0.1  # configs/resnet20.yaml


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    # padding=1 is symmetric, like cifarkit's ZeroPadding2D(1) before its strided "valid" conv.
    layer = nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)
    nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")  # He-normal
    return layer


def batch_norm(n: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(n, eps=BN_EPSILON, momentum=BN_MOMENTUM)


class Normalize(nn.Module):
    """Raw 0..255 pixels to per-channel standard scores, cifarkit's first layer."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR_STD).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, + option-A shortcut, ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(c_in, c_out, stride), batch_norm(c_out)
        self.conv2, self.bn2 = conv3x3(c_out, c_out), batch_norm(c_out)
        self.stride = stride
        extra = c_out - c_in
        self.pad = (extra // 2, extra - extra // 2)  # zero channels in front of and behind

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x
        if self.stride > 1:
            shortcut = shortcut[:, :, :: self.stride, :: self.stride]  # subsampling, no parameters
        if any(self.pad):
            shortcut = F.pad(shortcut, (0, 0, 0, 0, *self.pad))  # (W, H, C) pairs: channels only
        return F.relu(y + shortcut)


class ResNet20(nn.Module):
    """3x3 conv (16) -> 3 stages of 3 basic blocks (16, 32, 64; stride 2 at the first block of
    stages 2 and 3) -> global average pooling -> dense logits."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.normalize = Normalize()
        self.stem = nn.Sequential(conv3x3(3, WIDTHS[0]), batch_norm(WIDTHS[0]), nn.ReLU())
        blocks, c_in = [], WIDTHS[0]
        for stage, width in enumerate(WIDTHS):
            for block in range(BLOCKS):
                blocks.append(BasicBlock(c_in, width, 2 if stage > 0 and block == 0 else 1))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.logits = nn.Linear(c_in, num_classes)
        nn.init.xavier_uniform_(
            self.logits.weight
        )  # Keras Dense defaults: Glorot uniform, zero bias
        nn.init.zeros_(self.logits.bias)

    def forward(self, x):
        x = self.blocks(self.stem(self.normalize(x)))
        return self.logits(x.mean(dim=(2, 3)))


def optimizer(net: nn.Module) -> torch.optim.SGD:
    """SGD Nesterov with coupled weight decay on the conv and dense kernels, none on BatchNorm
    parameters and the dense bias (cifarkit's L2 regularisers sit on kernels only)."""
    kernels = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    others = [p for p in net.parameters() if all(p is not k for k in kernels)]
    return torch.optim.SGD(
        [dict(params=kernels, weight_decay=WD), dict(params=others, weight_decay=0.0)],
        lr=LR,
        momentum=MOMENTUM,
        nesterov=True,
    )


def environment_record() -> dict:
    """cifarkit's own machine record (CPU, cores, date, versions), so the chapter can tell
    whether this figure and cifarkit's were taken on one machine; with whether the CPU
    computes bfloat16 natively."""
    from cifarkit.core.repro import cpu_has_bfloat16
    from cifarkit.core.repro import environment_record as record

    return {
        **record(),
        "packages": {"torch": torch.__version__, "numpy": np.__version__},
        "cpu_bfloat16": cpu_has_bfloat16(),
    }


def default_json(channels_last: bool, bf16: bool) -> Path:
    tail = ("-cl" if channels_last else "") + ("-bf16" if bf16 else "")
    return artifacts_dir() / "bench" / f"throughput-resnet20-torch{tail}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=40, help="timed steps per repeat (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=8,
        help="untimed steps before each repeat's timed ones (default: %(default)s)",
    )
    parser.add_argument("--batch-size", type=int, default=BATCH, help="default: %(default)s")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="measurements; the median and range are reported (default: %(default)s)",
    )
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="model and batch in torch.channels_last memory format (default: NCHW)",
    )
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="forward pass under torch.autocast(device_type='cpu', dtype=torch.bfloat16)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads (default: torch's own choice)",
    )
    parser.add_argument(
        "--json",
        default=None,
        help="where to write the figures (default: "
        "artifacts/bench/throughput-resnet20-torch[-cl][-bf16].json)",
    )
    args = parser.parse_args()
    if min(args.steps, args.warmup, args.batch_size, args.repeats) < 1:
        parser.error("--steps, --warmup, --batch-size and --repeats must each be at least 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    batch = args.batch_size
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    precision = (
        "mixed_bfloat16" if args.bf16 else "float32"
    )  # Keras's policy names, as cifarkit's files
    torch.manual_seed(0)
    net = ResNet20().to(memory_format=memory_format)
    opt = optimizer(net)
    # As cifarkit's column (a): random 0..255 pixels as float32, random labels.
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (batch, 3, 32, 32)).astype(np.float32))
    images = images.contiguous(memory_format=memory_format)
    labels = torch.from_numpy(rng.integers(0, NUM_CLASSES, batch))

    def step():
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=args.bf16):
            logits = net(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=LABEL_SMOOTHING)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    net.train()
    runs = []
    for _ in range(args.repeats):
        for _ in range(args.warmup):
            step()
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        runs.append(batch * args.steps / (time.perf_counter() - started))
    img_s = statistics.median(runs)
    layout = "channels_last" if args.channels_last else "nchw"
    threads = torch.get_num_threads()
    environment = environment_record()
    result = {
        "model": "resnet20",
        "experiment": "resnet20",
        "framework": f"torch {torch.__version__}",
        "precision": precision,
        "memory_format": layout,
        "threads": threads,
        "batch_size": batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "synthetic_img_s": img_s,
        "synthetic_runs": runs,
        "pipeline_img_s": None,
        "environment": environment,
    }
    out = Path(args.json) if args.json else default_json(args.channels_last, args.bf16)
    write_json(out, result)
    print(f"written: {out}")
    spread = f"range {min(runs):.0f}-{max(runs):.0f}" if len(runs) > 1 else "one run"
    print(
        f"resnet20 (PyTorch {torch.__version__}, {'bfloat16' if args.bf16 else 'fp32'}, {layout}, "
        f"{threads} threads) batch {batch}: model alone {img_s:.0f} img/s median ({spread}, "
        f"{len(runs)} repeats of {args.steps} steps)"
    )


if __name__ == "__main__":
    main()
