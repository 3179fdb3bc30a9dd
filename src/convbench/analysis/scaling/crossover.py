"""The crossover of the ring model: over kernel sizes and global batches, the batch below which tensor parallel moves
fewer wire bytes per rank than data parallel, for the widths of the networks studied. Data parallel's bytes grow
with the parameters and do not depend on the batch; tensor parallel's grow with the batch and not with the kernel.
"""
from __future__ import annotations

import json
import math

import pandas as pd

from convbench.analysis.scaling.cells import PARALLEL
from convbench.parallel import bytes_model
from convbench.spec import ArchSpec, param_count

KERNELS = (1, 3, 5, 7, 9)  # odd: 'same' padding (convbench.spec)
BATCHES = (8, 16, 32, 64, 128, 256, 512)


def widths_of(arch_spec: str) -> tuple:
    """What the byte models need besides the kernel: (width, depth, activation, pieces, pool) per block, the input
    channels and the classes, from the tidy table's arch_spec (JSON)."""
    spec = ArchSpec.from_record(json.loads(arch_spec))
    return (tuple((b.width, b.depth, b.activation, b.pieces, b.pool) for b in spec.blocks), spec.in_channels,
            spec.num_classes)


def spec_of(widths: tuple, kernel: int, name: str = "grid") -> ArchSpec:
    blocks, in_channels, classes = widths
    return ArchSpec.from_dict(name, {"blocks": [
        {"width": w, "kernel": kernel, "depth": d, "activation": a, "pieces": p, "pool": pool}
        for w, d, a, p, pool in blocks]}, in_channels, classes)


def with_widths(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(widths=[widths_of(a) if isinstance(a, str) else None for a in df["arch_spec"]]) if len(df) \
        else df.assign(widths=[])


def model_configs(df: pd.DataFrame) -> list[tuple]:
    """(widths, image_size) of the networks studied, the most frequent first."""
    if not len(df):
        return []
    counts = with_widths(df).groupby(["widths", "image_size"], sort=False).size()
    return list(counts.sort_values(ascending=False, kind="stable").index)


def crossover_at(spec: ArchSpec, image_size: int, t: int) -> float:
    """The global batch at which both schemes move as many wire bytes per rank (ring model)."""
    data = bytes_model.data_parallel_bytes(spec, t)["wire_bytes_per_rank"]
    return data / bytes_model.tensor_parallel_bytes(spec, int(image_size), 1, t)["wire_bytes_per_rank"]


def crossover_batch(crossover: float) -> int:
    """The largest whole global batch at which tensor parallel moves fewer bytes than data parallel."""
    return max(0, math.ceil(crossover) - 1)


def grid(df: pd.DataFrame, kernels=KERNELS, batches=BATCHES) -> pd.DataFrame:
    """Ring-model wire bytes per rank of both schemes over kernel sizes x global batches x device counts, for every
    width configuration studied; crossover: the batch where tensor parallel's bytes equal data parallel's."""
    configs = model_configs(df)
    counts = sorted({int(t) for t in df["devices"] if t > 1}) if len(df) else []
    counts = counts or [2]
    batches = sorted({*batches, *(int(b) for b in df.loc[df["parallelism"].isin(PARALLEL), "global_batch"])}) \
        if len(df) else list(batches)
    rows = []
    for c, (widths, image_size) in enumerate(configs):
        for k in kernels:
            spec = spec_of(widths, k, f"k{k}")
            for t in counts:
                data = bytes_model.data_parallel_bytes(spec, t)["wire_bytes_per_rank"]
                per_example = bytes_model.tensor_parallel_bytes(spec, int(image_size), 1, t)["wire_bytes_per_rank"]
                for b in batches:
                    tensor = bytes_model.tensor_parallel_bytes(spec, int(image_size), b, t)["wire_bytes_per_rank"]
                    rows.append({"config": c, "widths": widths, "image_size": int(image_size), "kernel": k,
                                 "devices": t, "batch": b, "params": param_count(spec), "data": data,
                                 "tensor": tensor, "crossover": data / per_example})
    return pd.DataFrame(rows)


def same_at_any_count(widths: tuple, image_size: int, kernels=KERNELS) -> bool:
    """Whether the crossover is the same at every device count (both schemes carry the ring factor 2(t-1)/t)."""
    return all(len({round(crossover_at(spec_of(widths, k), image_size, t), 9) for t in (2, 3, 4, 8, 16)}) == 1
               for k in kernels)


def batches_of(rows: pd.DataFrame) -> dict[int, int]:
    """Kernel -> crossover batch, at the largest device count of one configuration's grid rows."""
    first = rows.drop_duplicates(["kernel", "devices"])
    first = first[first["devices"] == first["devices"].max()]
    return {int(k): crossover_batch(x) for k, x in zip(first["kernel"], first["crossover"])}


def measured_winners(df: pd.DataFrame, widths: tuple, image_size: int, batches: dict[int, int]) -> pd.DataFrame:
    """The (kernel, global batch) pairs measured with these widths, and which scheme the model has move fewer
    bytes there."""
    studied = with_widths(df[df["parallelism"].isin(PARALLEL)])
    studied = studied[(studied["widths"] == widths) & (studied["image_size"] == image_size)]
    pairs = studied.drop_duplicates(["kernel", "global_batch"]).sort_values("global_batch")
    return pd.DataFrame({"kernel": pairs["kernel"].astype(int).to_numpy(),
                         "global_batch": pairs["global_batch"].astype(int).to_numpy(),
                         "fewer": ["tensor" if b <= batches.get(int(k), 0) else "data"
                                   for k, b in zip(pairs["kernel"], pairs["global_batch"])]})
