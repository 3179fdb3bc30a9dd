"""PyTorch on several devices: data parallel (DDP) and tensor parallel (each rank holds C_out/t filters).

One process per device, started by torchrun; gloo between CPU processes, nccl between GPUs.

Data parallel: DistributedDataParallel, each rank on its share of the global batch. A comm hook
counts the bytes of every gradient bucket it hands to the default all-reduce hook.

Tensor parallel (TensorParallelConvNet): every rank holds width/t filters of every convolution and
runs them on the whole batch. Maxout needs all pieces of a map on one rank, so a rank holds the
filters of its out_maps/t output maps from every piece slab; it applies activation and max-pool
itself and all-gathers the maps along the channel dimension (they arrive in the spec's order).
The last block's maps stay sharded: the classifier is split by input features, each rank adds its
partial logits, and an all-reduce sums them (the classifier's bias lives on rank 0).

Autograd writes the backward: PyTorch's functional collectives (torch.distributed._functional_
collectives, which torch.distributed.nn.functional's deprecation notice in 2.13 points to; both
have the same backward) differentiate the *sum of every rank's loss*: an all-gather's backward
reduce-scatters (sums) the gradients, an all-reduce's backward all-reduces them. Here the
loss is replicated on every rank, so that sum is t times the loss and every gradient would come
out t times too large; each rank therefore backpropagates loss / t. The gathers' sum is right as
it is: every rank uses the gathered maps with its own filters, and the gradient of the maps is the
sum of those parts. tests/test_parallel.py checks both against one device.
"""

import os
import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol
import torch.nn.functional as F
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

from convbench.backends import torch_backend
from convbench.parallel.bytes_model import RING_FACTOR
from convbench.parallel.split import check_tensor_parallel, feature_slice, filter_slice
from convbench.spec import ArchSpec

PARALLELISMS = ("none", "data", "tensor")
TIMEOUT_S = 60  # every collective of the process group gives up after this, so nothing hangs


# --- the process group ------------------------------------------------------------------------

def init(device: str = "cpu", timeout_s: float = TIMEOUT_S) -> torch.device:
    """Join the process group torchrun describes in the environment; the device this rank uses."""
    backend = "nccl" if device == "cuda" else "gloo"
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return torch.device("cuda", torch.cuda.current_device()) if device == "cuda" else torch.device("cpu")


def sync(device: torch.device) -> None:
    """Every rank's device idle and every rank here: what a clock is read after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dist.barrier()


# --- counting the bytes of collectives --------------------------------------------------------

@dataclass
class Collective:
    op: str  # all_reduce | all_gather | reduce_scatter
    shape: tuple[int, ...]  # the full tensor: reduced, gathered, or reduce-scattered from
    dtype: torch.dtype
    phase: str  # forward | backward

    @property
    def bytes(self) -> int:
        return int(np.prod(self.shape)) * torch.empty((), dtype=self.dtype).element_size()


@dataclass
class CommLog:
    """Every collective a rank calls, with its payload, in order."""

    calls: list[Collective] = field(default_factory=list)

    def add(self, op: str, tensor: torch.Tensor, phase: str) -> None:
        self.calls.append(Collective(op, tuple(tensor.shape), tensor.dtype, phase))

    def clear(self) -> None:
        self.calls.clear()

    def summary(self, world: int, factors=RING_FACTOR) -> dict:
        payload = sum(c.bytes for c in self.calls)
        wire = sum(factors[c.op](world) * c.bytes for c in self.calls)
        return {"payload_bytes": payload, "wire_bytes_per_rank": wire,
                "calls": [{"op": c.op, "phase": c.phase, "shape": list(c.shape), "bytes": c.bytes} for c in self.calls]}


def counting_allreduce_hook(log: CommLog, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """DDP comm hook: note the bucket's payload, then DDP's own default (all-reduce, then average)."""
    log.add("all_reduce", bucket.buffer(), "backward")
    return default_hooks.allreduce_hook(None, bucket)


def replay(calls: list[Collective], device: torch.device):
    """A program that runs the same collectives on tensors of the same sizes, nothing else:
    the communication of a step alone."""
    world = dist.get_world_size()
    buffers = []
    for c in calls:
        full = torch.zeros(int(np.prod(c.shape)), dtype=c.dtype, device=device)
        buffers.append((c.op, full, torch.zeros(len(full) // world, dtype=c.dtype, device=device)))

    def run():
        for op, full, local in buffers:
            if op == "all_reduce":
                dist.all_reduce(full)
            elif op == "all_gather":
                dist.all_gather_single(full, local)
            else:
                dist.reduce_scatter_single(local, full)
    return run


# --- tensor parallel ----------------------------------------------------------------------------

class TensorParallelConvNet(nn.Module):
    """Rank `rank`'s part of the network of `spec`, sliced out of the full neutral `weights`.

    communicate=False keeps every shape and every FLOP but replaces the collectives by local copies:
    the no-communication baseline (each rank computing its part alone)."""

    def __init__(self, spec: ArchSpec, weights: dict[str, np.ndarray], rank: int, world: int,
                 log: CommLog | None = None, communicate: bool = True):
        super().__init__()
        check_tensor_parallel(spec, world)
        self.spec, self.rank, self.world, self.communicate = spec, rank, world, communicate
        self.log = log if log is not None else CommLog()
        self.convs = nn.ModuleList()
        for conv in spec.convs():
            block = spec.blocks[conv.block]
            index = filter_slice(block.width, block.pieces, rank, world)
            layer = nn.Conv2d(conv.in_channels, len(index), conv.kernel, padding=conv.kernel // 2)
            layer.weight.data.copy_(torch.from_numpy(weights[f"{conv.name}.weight"][index]))
            layer.bias.data.copy_(torch.from_numpy(weights[f"{conv.name}.bias"][index]))
            self.convs.append(layer)
        self.features = feature_slice(spec, rank, world)  # the last block's maps this rank holds
        self.head = nn.Linear(spec.features // world, spec.num_classes, bias=rank == 0)
        self.head.weight.data.copy_(torch.from_numpy(weights["head.weight"][:, self.features]))
        if rank == 0:
            self.head.bias.data.copy_(torch.from_numpy(weights["head.bias"]))

    def gather(self, x):
        """All-gather the maps along channels, in rank order (= the spec's order of maps)."""
        if not self.communicate:
            return torch.cat([x] * self.world, dim=1)
        out = funcol.all_gather_single(x, 1, dist.group.WORLD)
        self.log.add("all_gather", out, "forward")
        if out.requires_grad:
            out.register_hook(lambda g: self.log.add("reduce_scatter", g, "backward"))
        return out

    def reduce(self, x):
        if not self.communicate:
            return x
        out = funcol.all_reduce(x, "sum", dist.group.WORLD)
        self.log.add("all_reduce", out, "forward")
        if out.requires_grad:
            out.register_hook(lambda g: self.log.add("all_reduce", g, "backward"))
        return out

    def forward(self, x):
        convs = self.spec.convs()
        for i, (conv, layer) in enumerate(zip(convs, self.convs)):
            block = self.spec.blocks[conv.block]
            x = layer(x)
            x = F.relu(x) if block.activation == "relu" else torch_backend.maxout(x, block.pieces)
            last = i + 1 == len(convs)
            if (last or convs[i + 1].block != conv.block) and block.pool > 1:
                x = F.max_pool2d(x, block.pool)  # per map: before the gather, on a quarter of the volume
            if not last:
                x = self.gather(x)
        return self.reduce(self.head(x.mean(dim=(2, 3))))

    def full_gradients(self) -> dict[str, np.ndarray]:
        """Every rank's gradients assembled into the full neutral layout (collective: call on every rank)."""
        named = {}
        for conv, layer in zip(self.spec.convs(), self.convs):
            block = self.spec.blocks[conv.block]
            for kind, grad in (("weight", layer.weight.grad), ("bias", layer.bias.grad)):
                full = torch.empty((block.width, *grad.shape[1:]), dtype=grad.dtype)
                for r, part in enumerate(_all_gather(grad)):
                    full[filter_slice(block.width, block.pieces, r, self.world)] = part
                named[f"{conv.name}.{kind}"] = full.numpy()
        named["head.weight"] = torch.cat(_all_gather(self.head.weight.grad), dim=1).numpy()
        bias = self.head.bias.grad if self.rank == 0 else torch.empty(self.spec.num_classes, dtype=self.head.weight.dtype)
        dist.broadcast(bias, 0)
        named["head.bias"] = bias.numpy()
        return named


def _all_gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return [p.cpu() for p in parts]


# --- training --------------------------------------------------------------------------------

def local_batch(parallelism: str, x, y, rank: int, world: int):
    """The rows of the global batch a rank trains on: its share under data parallel, all of it otherwise."""
    if parallelism != "data":
        return x, y
    if len(x) % world:
        raise ValueError(f"data parallel over {world} ranks needs a global batch divisible by {world}, got {len(x)}")
    share = len(x) // world
    return x[rank * share:(rank + 1) * share], y[rank * share:(rank + 1) * share]


class ParallelTrainer(torch_backend.Trainer):
    """One rank's part of a network, its SGD optimizer and loss; the phases of a training step
    (optimizer step, phases and whole step as torch_backend.Trainer's).

    parallelism "data": DDP (communicate=False: the same local model without DDP, on the same share);
    "tensor": TensorParallelConvNet; "none": the plain network. Inputs are the rank's own rows."""

    def __init__(self, spec: ArchSpec, weights, parallelism: str, lr: float, momentum: float,
                 device: torch.device, dtype: torch.dtype = torch.float32, communicate: bool = True):
        if parallelism not in PARALLELISMS:
            raise ValueError(f"unknown parallelism {parallelism!r} (known: {', '.join(PARALLELISMS)})")
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        self.parallelism, self.device, self.log = parallelism, device, CommLog()
        self.loss_scale = 1.0
        if parallelism == "tensor":
            self.model = TensorParallelConvNet(spec, weights, self.rank, self.world, self.log, communicate)
            self.model.to(device, dtype)
            self.loss_scale = 1.0 / self.world if communicate else 1.0  # see the module's docstring
            self.net = self.model
        else:
            self.model = torch_backend.build(spec, weights).to(device, dtype)
            self.net = self.model
            if parallelism == "data" and communicate:
                self.net = DistributedDataParallel(self.model, device_ids=[device] if device.type == "cuda" else None)
                self.net.register_comm_hook(self.log, counting_allreduce_hook)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=momentum)
        self.learned, self.learned_optimizers, self.penalty_weights = False, [], (0.0, 0.0)  # no learned sizes here
        self.delay_s = 0.0  # a straggler sleeps this long at the start of every forward
        self._loss = None

    def forward(self, x, y):
        if self.delay_s:
            time.sleep(self.delay_s)
        self._loss = F.cross_entropy(self.net(x), y)

    def backward(self):
        (self._loss * self.loss_scale).backward()

    def gradients(self, x, y) -> dict[str, np.ndarray]:
        """Loss gradients of every weight in full neutral layout, the same on every rank (collective)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.forward(x, y)
        self.backward()
        loss = self._loss.detach().clone()
        if self.parallelism == "tensor":
            named = self.model.full_gradients()
        else:  # DDP has already averaged them over the ranks; the loss is each rank's share's
            named = {name: p.grad.detach().cpu().numpy() for name, p in self.model.named_parameters()}
            if self.parallelism == "data":
                dist.all_reduce(loss)
                loss /= self.world
        named["loss"] = loss.cpu().numpy()
        self.optimizer.zero_grad(set_to_none=True)
        return named


def gradients(spec: ArchSpec, weights, x: np.ndarray, y: np.ndarray, parallelism: str,
              dtype: torch.dtype = torch.float64, device: torch.device = torch.device("cpu")) -> dict[str, np.ndarray]:
    """Gradients of the global batch's mean loss computed the `parallelism` way over the process group,
    in full neutral layout on every rank; x, y: the whole global batch (each rank takes its rows)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    cast = {k: np.asarray(v, dtype=torch.empty((), dtype=dtype).numpy().dtype) for k, v in weights.items()}
    trainer = ParallelTrainer(spec, cast, parallelism, 0.0, 0.0, device, dtype)
    xs, ys = local_batch(parallelism, x, y, rank, world)
    xt = torch.from_numpy(np.asarray(xs)).to(device, dtype)
    return trainer.gradients(xt, torch.from_numpy(np.asarray(ys)).long().to(device))
