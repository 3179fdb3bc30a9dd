"""How tensor parallel splits a network over t ranks, framework-free: both frameworks' tensor-parallel
networks (torch_parallel, tf_parallel) take their slices from here, so they split alike.

Every rank holds width/t filters of every convolution and runs them on the whole batch. Maxout needs
all pieces of a map on one rank, so a rank holds the filters of its out_maps/t output maps from every
piece slab; its maps, all-gathered along channels in rank order, come out in the spec's order.
"""
import numpy as np

from convbench.spec import ArchSpec


def filter_slice(width: int, pieces: int, rank: int, world: int) -> np.ndarray:
    """Indices of the filters rank holds: its out_maps/world output maps, from each of the pieces slabs
    (maxout's map j is the max of filters i*out_maps + j; for relu, pieces = 1, a contiguous slice)."""
    maps = width // pieces
    per = maps // world
    return np.concatenate([np.arange(i * maps + rank * per, i * maps + (rank + 1) * per) for i in range(pieces)])


def feature_slice(spec: ArchSpec, rank: int, world: int) -> slice:
    """The last block's maps a rank holds, which are the classifier's input features it multiplies."""
    per = spec.features // world
    return slice(rank * per, (rank + 1) * per)


def check_tensor_parallel(spec: ArchSpec, world: int) -> None:
    for i, block in enumerate(spec.blocks):
        if block.out_channels % world:
            raise ValueError(f"tensor parallel over {world} ranks needs every block's output maps divisible by "
                             f"{world}; block {i} of {spec.name} has {block.out_channels}")
        if block.learned:
            raise ValueError(f"tensor parallel splits plain convolutions; block {i} of {spec.name} learns its "
                             f"kernel size or filter count")


def assemble(spec: ArchSpec, parts: dict[int, dict[str, np.ndarray]], world: int) -> dict[str, np.ndarray]:
    """Every rank's slices (neutral layouts, by rank) put back into the full network's tensors."""
    named = {}
    for conv in spec.convs():
        block = spec.blocks[conv.block]
        for kind in ("weight", "bias"):
            first = parts[0][f"{conv.name}.{kind}"]
            full = np.empty((block.width, *first.shape[1:]), first.dtype)
            for rank, part in parts.items():
                full[filter_slice(block.width, block.pieces, rank, world)] = part[f"{conv.name}.{kind}"]
            named[f"{conv.name}.{kind}"] = full
    named["head.weight"] = np.concatenate([parts[r]["head.weight"] for r in range(world)], axis=1)
    named["head.bias"] = parts[0]["head.bias"]
    return named
