"""A model of one training step on P devices: measured single-device times plus an alpha-beta model of the
collectives. Plain functions on plain data (no framework, no tidy table): the scaling study feeds them the layers
study's times and checks them against its measured cells (convbench.analysis.scaling.projection).

Collectives (Thakur, Rabenseifner and Gropp 2005; Sanders, Speck and Traeff 2009), n the payload in bytes, p ranks,
alpha a link's latency per step and beta its seconds per byte (one direction):
  ring all-reduce       2(p-1) alpha + 2(p-1)/p n beta   (a reduce-scatter, then an all-gather)
  ring all-gather       (p-1) alpha  + (p-1)/p n beta    (n: the gathered tensor)
  ring reduce-scatter   (p-1) alpha  + (p-1)/p n beta    (n: the tensor reduced from)
  tree all-reduce       2 ceil(log2 p) alpha + 2 n beta  (pipelined double binary tree: reduce up, broadcast down)
An all-reduce takes the faster of ring and tree, as NCCL's tuner does. Across nodes a collective is hierarchical:
within each node over the fast link, across nodes over the slow one on 1/g of the payload, within again.

A step (data parallel): forward, then the backward of every convolution from the last; DDP all-reduces a bucket of
gradients as soon as its last gradient is ready, one bucket at a time, while the backward goes on; what outlasts the
backward is exposed. Tensor parallel: each device computes 1/p of every layer; every collective waits on the one
before it and the next layer waits on it, so all of them add to the step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from convbench.parallel import bytes_model
from convbench.spec import ArchSpec

MIB = 1024 * 1024
DDP_FIRST_BUCKET = 1 * MIB  # torch.nn.parallel.DistributedDataParallel: the first bucket's cap (bucket_cap_mb
DDP_BUCKET = 25 * MIB  # for the others); a bucket closes once it reaches its cap


@dataclass(frozen=True)
class Link:
    """One direction of a link: latency per step (s) and seconds per byte."""
    name: str
    alpha: float
    beta: float

    @classmethod
    def from_config(cls, name: str, entry: dict) -> Link:
        """From a projection.links entry: bandwidth_gbs (GB/s each way, 1e9 bytes) and latency_us."""
        return cls(name, entry["latency_us"] * 1e-6, 1.0 / (entry["bandwidth_gbs"] * 1e9))


def steps(op: str, p: int, algorithm: str = "ring") -> int:
    """Sequential message steps of a collective over p ranks."""
    if p <= 1:
        return 0
    if algorithm == "tree":
        if op != "all_reduce":
            raise ValueError(f"the tree algorithm is modelled for all_reduce only, not {op}")
        return 2 * math.ceil(math.log2(p))
    return {"all_reduce": 2 * (p - 1), "all_gather": p - 1, "reduce_scatter": p - 1}[op]


def byte_factor(op: str, p: int, algorithm: str = "ring") -> float:
    """Bytes each rank sends, as a multiple of the payload."""
    if p <= 1:
        return 0.0
    if algorithm == "tree":
        steps(op, p, algorithm)  # refuses all-gather and reduce-scatter
        return 2.0
    return bytes_model.RING_FACTOR[op](p)


def collective_time(op: str, nbytes: float, p: int, link: Link, algorithm: str = "ring") -> float:
    """alpha x steps + bytes x beta x factor: one collective over p ranks on one kind of link."""
    return link.alpha * steps(op, p, algorithm) + nbytes * link.beta * byte_factor(op, p, algorithm)


def best_time(op: str, nbytes: float, p: int, link: Link, algorithms=("ring", "tree")) -> float:
    """The faster algorithm: ring or tree for an all-reduce; ring for the others."""
    usable = [a for a in algorithms if op == "all_reduce" or a == "ring"]
    return min(collective_time(op, nbytes, p, link, a) for a in usable)


@dataclass(frozen=True)
class Fabric:
    """Devices in nodes of per_node each: intra links within a node, inter between nodes (None: one node only).
    aliases: ops a library runs as another (gloo runs a reduce-scatter as an all-reduce)."""
    intra: Link
    per_node: int = 1 << 30
    inter: Link | None = None
    algorithms: tuple[str, ...] = ("ring", "tree")
    aliases: dict = field(default_factory=dict)

    def time(self, op: str, nbytes: float, p: int) -> float:
        op = self.aliases.get(op, op)
        if p <= self.per_node:
            return best_time(op, nbytes, p, self.intra, self.algorithms)
        if self.inter is None or p % self.per_node:
            raise ValueError(f"{p} devices do not fill whole nodes of {self.per_node}")
        g, nodes = self.per_node, p // self.per_node
        within = lambda o, n: best_time(o, n, g, self.intra, self.algorithms)
        across = lambda o, n: best_time(o, n, nodes, self.inter, self.algorithms)
        if op == "all_reduce":
            return within("reduce_scatter", nbytes) + across("all_reduce", nbytes / g) + within("all_gather", nbytes)
        if op == "all_gather":
            return across("all_gather", nbytes / g) + within("all_gather", nbytes)
        return within("reduce_scatter", nbytes) + across("reduce_scatter", nbytes / g)


# --- what one step communicates -----------------------------------------------------------------------------------

def gradient_bytes(spec: ArchSpec, itemsize: int = 4) -> list[tuple[int, int]]:
    """(convolution index, gradient bytes) in the order DDP's backward makes them ready: the classifier first
    (index len(convs): ready when the backward starts), then each convolution from the last."""
    convs = spec.convs()
    head = (spec.features * spec.num_classes + spec.num_classes) * itemsize
    out = [(len(convs), head)]
    for i in reversed(range(len(convs))):
        c = convs[i]
        out.append((i, (c.kernel ** 2 * c.in_channels * c.out_channels + c.out_channels) * itemsize))
    return out


def ddp_buckets(gradients: list[tuple[int, int]], first_cap: int = DDP_FIRST_BUCKET, cap: int = DDP_BUCKET):
    """DDP's buckets as (index of the convolution whose backward completes it, bytes): gradients in ready order,
    a bucket closing once it holds its cap or more (the first bucket's cap is smaller)."""
    buckets, size, last = [], 0, None
    for index, nbytes in gradients:
        size, last = size + nbytes, index
        if size >= (cap if buckets else first_cap):
            buckets.append((last, size))
            size = 0
    if size:
        buckets.append((last, size))
    return buckets


def tensor_collectives(spec: ArchSpec, image_size: int, batch: int, p: int) -> tuple[list, list]:
    """(forward, backward) collectives of tensor parallel as (op, payload bytes), from the byte model: an
    all-gather of every convolution's maps but the last's and an all-reduce of the logits forward; their
    reduce-scatters and the logits' all-reduce backward."""
    model = bytes_model.tensor_parallel_bytes(spec, image_size, batch, p)
    gathers = [layer["bytes"] for layer in model["layers"]]
    forward = [("all_gather", b) for b in gathers] + [("all_reduce", model["logits_bytes"])]
    backward = [("all_reduce", model["logits_bytes"])] + [("reduce_scatter", b) for b in reversed(gathers)]
    return forward, backward


# --- a step ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Compute:
    """One device's computation in a step (s): per convolution, in network order, forward and backward (to the
    input and to the weights, activation included); rest: everything else (pools, classifier, loss, optimizer).
    overhead: the part of each that is per-step overhead (launching operations, Python, the framework's dispatch:
    the intercept a of the batch sweep's step = a + b x batch), as (forward per convolution, backward per
    convolution, rest); it does not shrink with a device's share of the work."""
    forward: tuple[float, ...]
    backward: tuple[float, ...]
    rest: float
    overhead: tuple[tuple[float, ...], tuple[float, ...], float] | None = None

    @property
    def total(self) -> float:
        return sum(self.forward) + sum(self.backward) + self.rest

    def scaled(self, factor: float) -> Compute:
        """A device doing `factor` of the work: the overhead as it is, the rest of each time scaled."""
        fixed_f, fixed_b, fixed_r = self.overhead or ((0.0,) * len(self.forward), (0.0,) * len(self.backward), 0.0)
        part = lambda t, o: o + (t - o) * factor  # noqa: E731
        return Compute(tuple(map(part, self.forward, fixed_f)), tuple(map(part, self.backward, fixed_b)),
                       part(self.rest, fixed_r), self.overhead)

    def with_overhead(self, forward: float, backward: float, rest: float) -> Compute:
        """This computation with a per-step overhead of `forward` and `backward` per convolution and `rest` for the
        rest of the step, each capped at the time it is part of."""
        return Compute(self.forward, self.backward, self.rest,
                       (tuple(min(forward, t) for t in self.forward), tuple(min(backward, t) for t in self.backward),
                        min(rest, self.rest)))


def data_parallel_step(compute: Compute, buckets: list[tuple[int, float]]) -> dict:
    """buckets: (index of the convolution whose backward completes it, seconds of its all-reduce), in order.
    The all-reduces run one at a time beside the backward; what is left when the backward ends is exposed."""
    n = len(compute.backward)
    done, clock = {n: 0.0}, 0.0  # backward time at which each convolution's gradients are ready
    for i in reversed(range(n)):
        clock += compute.backward[i]
        done[i] = clock
    free = 0.0
    for index, seconds in buckets:
        free = max(free, done[index]) + seconds
    comm = sum(s for _, s in buckets)
    exposed = max(0.0, free - clock)
    return {"compute": compute.total, "comm": comm, "exposed": exposed, "step": compute.total + exposed}


def tensor_parallel_step(compute: Compute, collectives: list[float]) -> dict:
    """Every collective on the critical path: the step is the computation plus all of them."""
    comm = float(sum(collectives))
    return {"compute": compute.total, "comm": comm, "exposed": comm, "step": compute.total + comm}


def step(spec: ArchSpec, image_size: int, compute: Compute, parallelism: str, p: int, global_batch: int,
         fabric: Fabric) -> dict:
    """One device's share of the step already in `compute`; the collectives of `parallelism` over p devices."""
    if parallelism == "data" and p > 1:
        buckets = [(i, fabric.time("all_reduce", b, p)) for i, b in ddp_buckets(gradient_bytes(spec))]
        return data_parallel_step(compute, buckets)
    if parallelism == "tensor" and p > 1:
        forward, backward = tensor_collectives(spec, image_size, global_batch, p)
        return tensor_parallel_step(compute, [fabric.time(op, b, p) for op, b in forward + backward])
    return tensor_parallel_step(compute, [])


def share(parallelism: str, p: int, global_batch: int, reference_batch: int) -> float:
    """One device's part of the one-device work measured at reference_batch: data parallel runs global/p examples
    through the whole network, tensor parallel every example through 1/p of every layer."""
    return global_batch / (p * reference_batch) if parallelism in ("data", "tensor") else global_batch / reference_batch


def fit_alpha_beta(points: list[tuple[float, float, float]]) -> tuple[float, float]:
    """alpha, beta >= 0 by least squares from (steps, wire bytes, seconds) of measured collectives."""
    import numpy as np
    from scipy.optimize import nnls

    a = np.array([[s, b] for s, b, _ in points], float)
    scale = a.max(axis=0)
    scale[scale == 0] = 1.0
    solution, _ = nnls(a / scale, np.array([t for *_, t in points], float))
    alpha, beta = solution / scale
    return float(alpha), float(beta)
