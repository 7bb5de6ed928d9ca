"""Same-machine reference for the fast recipe: airbench94's network in PyTorch, training img/s on CPU.

The issue's time goal ("at least airbench's own speed here") was set from airbench94 timed on
another machine kind. This script times airbench94's own network and training step on *this*
machine, the way ``cifarkit bench throughput --model airbench`` times ours (column (a): one
synthetic batch of 1024 fed over and over, warm-up steps untimed), so the two img/s figures
compare frameworks, not machines.

Needs PyTorch, which cifarkit does not depend on (run it from a separate venv):

    python -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch numpy
    /tmp/torchref/bin/python tools/airbench94_torch_throughput.py [--steps 40]

It writes ``artifacts/bench/throughput-airbench94-torch.json`` (``--json`` to change), in the
form of ``cifarkit bench throughput``'s files and with the CPU it ran on, so the fast-training
chapter can put both figures side by side (and refuses to when the CPUs differ).

The network, BatchNorm settings, GELU, widths, scaling and optimizer step follow
airbench 0.1.8 (``airbench/lib_airbench94.py``, MIT licence, Keller Jordan), with two changes
CPU forces: fp32 instead of fp16 and no CUDA. Lookahead (every 5 steps) and the whitening
init are left out: they cost a few element-wise ops, not convolutions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# cifarkit.core.repro and cifarkit.core.atomic need only the standard library and NumPy, so they are
# imported from the checkout: this venv has PyTorch, not cifarkit's pinned environment.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cifarkit.core.atomic import write_json  # noqa: E402

WIDTHS = (64, 256, 256)
BN_MOMENTUM = 0.6
SCALING = 1 / 9
BATCH = 1024
LR, MOMENTUM, WD, BIAS_SCALER = 11.5, 0.85, 0.0153, 64.0  # airbench94's hyp['opt'], per 1024


class BatchNorm(nn.BatchNorm2d):
    def __init__(self, n: int):
        super().__init__(n, eps=1e-12, momentum=1 - BN_MOMENTUM)
        self.weight.requires_grad = False


def conv(c_in: int, c_out: int, k: int = 3, padding="same", bias: bool = False) -> nn.Conv2d:
    layer = nn.Conv2d(c_in, c_out, kernel_size=k, padding=padding, bias=bias)
    torch.nn.init.dirac_(layer.weight.data[:c_in])
    return layer


def conv_group(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        conv(c_in, c_out),
        nn.MaxPool2d(2),
        BatchNorm(c_out),
        nn.GELU(),
        conv(c_out, c_out),
        BatchNorm(c_out),
        nn.GELU(),
    )


class Mul(nn.Module):
    def forward(self, x):
        return x * SCALING


def make_net() -> nn.Sequential:
    whiten_width = 2 * 3 * 2**2
    net = nn.Sequential(
        conv(3, whiten_width, 2, padding=0, bias=True),
        nn.GELU(),
        conv_group(whiten_width, WIDTHS[0]),
        conv_group(WIDTHS[0], WIDTHS[1]),
        conv_group(WIDTHS[1], WIDTHS[2]),
        nn.MaxPool2d(3),
        nn.Flatten(),
        nn.Linear(WIDTHS[2], 10, bias=False),
        Mul(),
    )
    net[0].weight.requires_grad = False
    return net.to(memory_format=torch.channels_last)


def optimizer(net: nn.Module) -> torch.optim.SGD:
    """airbench94's decoupled hyper-parameters turned into torch SGD groups (as in its train())."""
    kilostep_scale = 1024 * (1 + 1 / (1 - MOMENTUM))
    lr, wd = LR / kilostep_scale, WD * BATCH / kilostep_scale
    lr_biases = lr * BIAS_SCALER
    norm = [p for p in net.modules() if isinstance(p, BatchNorm)]
    norm_biases = [m.bias for m in norm]
    other = [
        p for p in net.parameters() if p.requires_grad and all(p is not q for q in norm_biases)
    ]
    return torch.optim.SGD(
        [
            dict(params=norm_biases, lr=lr_biases, weight_decay=wd / lr_biases),
            dict(params=other, lr=lr, weight_decay=wd / lr),
        ],
        momentum=MOMENTUM,
        nesterov=True,
    )


def environment_record() -> dict:
    """cifarkit's own machine record (CPU, cores, date, versions), so the chapter can tell
    whether this figure and cifarkit's were taken on one machine."""
    from cifarkit.core.repro import environment_record as record

    return {**record(), "packages": {"torch": torch.__version__}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument(
        "--json",
        default="artifacts/bench/throughput-airbench94-torch.json",
        help="where to write the figures (default: %(default)s)",
    )
    args = parser.parse_args()

    torch.manual_seed(0)
    net = make_net()
    opt = optimizer(net)
    images = torch.rand(BATCH, 3, 32, 32).to(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (BATCH,))

    def step():
        loss = F.cross_entropy(net(images), labels, label_smoothing=0.2, reduction="none").sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    net.train()
    for _ in range(args.warmup):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    img_s = BATCH * args.steps / (time.perf_counter() - started)
    environment = environment_record()
    result = {
        "model": "airbench94",
        "framework": f"torch {torch.__version__}",
        "threads": torch.get_num_threads(),
        "batch_size": BATCH,
        "steps": args.steps,
        "synthetic_img_s": img_s,
        "environment": environment,
    }
    out = Path(args.json)
    write_json(out, result)
    print(f"written: {out}")
    print(
        f"airbench94 (PyTorch {torch.__version__}, fp32, {torch.get_num_threads()} threads) batch {BATCH}: "
        f"model alone {img_s:.0f} img/s"
    )


if __name__ == "__main__":
    main()
