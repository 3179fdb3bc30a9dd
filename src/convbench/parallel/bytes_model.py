"""Closed-form bytes of one training step's collectives, from the spec alone (no framework import).

Payload: the full tensor a collective reduces or gathers. Wire bytes per rank: what each rank sends
under ring algorithms, where an all-reduce is a reduce-scatter followed by an all-gather.
"""
from convbench.spec import ArchSpec, conv_sizes, param_count

RING_FACTOR = {"all_reduce": lambda t: 2 * (t - 1) / t, "all_gather": lambda t: (t - 1) / t,
               "reduce_scatter": lambda t: (t - 1) / t}
# gloo (torch 2.13) runs a reduce-scatter as a whole all-reduce: the loopback counter shows 2(t-1)/t of the
# payload per rank, as for an all-reduce (measured with 2 and 4 processes, benchmarks/scaling_demo.py).
GLOO_FACTOR = {**RING_FACTOR, "reduce_scatter": RING_FACTOR["all_reduce"]}


def data_parallel_bytes(spec: ArchSpec, world: int, itemsize: int = 4, factors=RING_FACTOR) -> dict:
    """One all-reduce of every gradient per step: 2(t-1)/t x parameters x bytes sent per rank."""
    payload = param_count(spec) * itemsize
    return {"payload_bytes": payload, "wire_bytes_per_rank": factors["all_reduce"](world) * payload}


def tensor_parallel_bytes(spec: ArchSpec, image_size: int, batch: int, world: int, itemsize: int = 4,
                          factors=RING_FACTOR) -> dict:
    """The activation volume of every layer: the maps of every convolution but the last are all-gathered
    in the forward and reduce-scattered in the backward (after the block's pool where the convolution
    ends a block); the logits are all-reduced in both directions. batch: the global batch, which
    every rank runs."""
    convs = conv_sizes(spec, image_size)
    layers = []
    for (conv, size), (following, _) in zip(convs, convs[1:]):
        block = spec.blocks[conv.block]
        out = size // block.pool if following.block != conv.block else size
        layers.append({"layer": conv.name, "bytes": batch * block.out_channels * out * out * itemsize})
    gathered = sum(layer["bytes"] for layer in layers)
    logits = batch * spec.num_classes * itemsize
    payload = 2 * gathered + 2 * logits
    wire = gathered * (factors["all_gather"](world) + factors["reduce_scatter"](world)) \
        + 2 * logits * factors["all_reduce"](world)
    return {"payload_bytes": payload, "wire_bytes_per_rank": wire, "layers": layers, "logits_bytes": logits}
