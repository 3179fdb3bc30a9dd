"""PyTorch: build a spec, load neutral weights, and expose the phases of a training step."""
from __future__ import annotations

import platform

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convbench.spec import ArchSpec, Block

NAME = "torch"
LAYOUT = "NCHW"


class Maxout(nn.Module):
    """Max over `pieces` contiguous channel slabs (see convbench.spec for the convention)."""

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.pieces, c // self.pieces, h, w).amax(dim=1)


class ConvBlock(nn.Module):
    def __init__(self, block: Block, in_channels: int):
        super().__init__()
        self.convs = nn.ModuleList()
        for _ in range(block.depth):
            self.convs.append(nn.Conv2d(in_channels, block.width, block.kernel, padding=block.kernel // 2))
            in_channels = block.out_channels
        self.activation = nn.ReLU() if block.activation == "relu" else Maxout(block.pieces)
        self.pool = nn.MaxPool2d(block.pool) if block.pool > 1 else nn.Identity()

    def forward(self, x):
        for conv in self.convs:
            x = self.activation(conv(x))
        return self.pool(x)


class ConvNet(nn.Module):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        blocks, channels = [], spec.in_channels
        for block in spec.blocks:
            blocks.append(ConvBlock(block, channels))
            channels = block.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(channels, spec.num_classes)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(dim=(2, 3)))


def build(spec: ArchSpec, weights: dict[str, np.ndarray]) -> ConvNet:
    """The network of `spec` holding `weights` (neutral layout, which is PyTorch's own)."""
    model = ConvNet(spec)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    return model


def export_weights(model: ConvNet) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def configure(threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process, or parallel work has started
        pass


def device_for(kind: str) -> torch.device:
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(kind)


def environment(device: str) -> dict:
    env = {
        "versions": {"torch": torch.__version__},
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
        "flags": {
            "layout": LAYOUT,
            "mkldnn": torch.backends.mkldnn.is_available(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
        },
        "device_model": platform.processor() or platform.machine(),
    }
    if device == "cuda":
        env["device_model"] = torch.cuda.get_device_name()
        env["versions"]["cuda"] = torch.version.cuda
        env["versions"]["cudnn"] = torch.backends.cudnn.version()
        env["flags"]["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        env["flags"]["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        env["flags"]["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    return env


class Trainer:
    """One network, its SGD optimizer and loss, on one device; the phases of a training step."""

    framework = NAME

    def __init__(self, spec: ArchSpec, weights, lr: float, momentum: float, device: str = "cpu"):
        self.device = device_for(device)
        self.model = build(spec, weights).to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=momentum)
        self._loss = None

    def to_device(self, x: np.ndarray, y: np.ndarray):
        """Inputs in NCHW float32 and integer labels, placed on the device."""
        return torch.from_numpy(x).to(self.device), torch.from_numpy(y).long().to(self.device)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # The three phases of a training step, timed one by one by convbench.timing.
    def forward(self, x, y):
        self._loss = F.cross_entropy(self.model(x), y)

    def backward(self):
        self._loss.backward()

    def optimizer_step(self):
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def train_step(self, x, y) -> float:
        self.model.train()
        self.forward(x, y)
        self.backward()
        self.optimizer_step()
        return self._loss.item()

    @torch.no_grad()
    def evaluate(self, x, y) -> tuple[float, float]:
        """Summed loss and number of correct predictions on one batch."""
        self.model.eval()
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, reduction="sum").item()
        return loss, (logits.argmax(1) == y).sum().item()

    def gradients(self, x, y) -> dict[str, np.ndarray]:
        """Loss gradients w.r.t. every weight (neutral names) and the input ("input")."""
        x = x.clone().requires_grad_(True)
        names, params = zip(*self.model.named_parameters())
        loss = F.cross_entropy(self.model(x), y)
        grads = torch.autograd.grad(loss, [x, *params])
        named = {name: g.cpu().numpy() for name, g in zip(names, grads[1:])}
        named["input"] = grads[0].cpu().numpy()
        return named

    def logits(self, x) -> np.ndarray:
        with torch.no_grad():
            return self.model(x).cpu().numpy()
