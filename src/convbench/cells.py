"""Cells: the units of work, each fully named by its parameters, expanded from the config."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from convbench.data import IMAGE_SIZES, DataError, Planted, split_sizes  # numpy only: still no framework imported
from convbench.spec import ArchSpec, Block, SpecError, conv_sizes
from convbench.timing import COUNTED_KEYS

FRAMEWORKS = ("torch", "tensorflow")
# The engines, named once: the backends, the analysis's order and the config schema (test_config checks it) read them
# here, where expanding a config imports no framework. torch: eager, op by op; torchscript, the TorchScript graph
# executor (deprecated, kept while it runs); compile, torch.compile with Inductor; cudagraph (GPU only), forward,
# backward and optimizer step captured as CUDA graphs and replayed. tensorflow: eager; function, tf.function graphs;
# xla, tf.function(jit_compile=True).
ENGINES = {"torch": ("eager", "torchscript", "compile", "cudagraph"), "tensorflow": ("eager", "function", "xla")}
# A captured graph holds one batch shape, and a training epoch ends in a smaller batch (data.batches): timing only.
TIMING_ONLY = ("cudagraph",)
TASKS = ("train", "speed", "layers", "scaling")
# Input channels, image size (None: the timed size, speed.image_size) and classes of the data sets a train cell
# can use: the planted task is drawn, and digits and mnist5k resized, at the size the speed cells time.
DATASET_SHAPES = {"planted": (1, None, 2), "digits": (1, None, 10), "mnist5k": (1, None, 10),
                  "mnist": (1, IMAGE_SIZES["mnist"], 10), "cifar10": (3, IMAGE_SIZES["cifar10"], 10)}
FILE_DATASETS = ("mnist", "cifar10")  # read from data.root; the others are drawn or ship with a package
# Training engines when train.engine names none: graph mode for TensorFlow (eager is 2-4.6x slower there).
TRAIN_ENGINES = {"torch": "eager", "tensorflow": "function"}
# Settings of the planted task (convbench.data.Planted) a config's data section may give.
PLANTED_KEYS = ("scale", "scales", "train_size", "test_size", "distractors", "noise")
# A record is <cell id>.json, or <cell id>.json.failed beside an ok one (convbench.records.publish): what a file
# name can hold (255 bytes) less that suffix. (Temporary files cut the name they stand for: files.replacing.)
MAX_ID = 255 - len(".json.failed")


@dataclass(frozen=True)
class Cell:
    study: str
    task: str  # "train": accuracy on a data set; "speed": timed steps on a synthetic batch; "layers": one conv
    framework: str
    engine: str
    arch: ArchSpec
    batch_size: int
    image_size: int
    seed: int
    threads: int
    device: str = "cpu"
    devices: int = 1
    parallelism: str = "none"
    train_fraction: float = 1.0  # of the training split, for train cells (the overfitting question)
    settings: dict = field(default_factory=dict, compare=False)  # protocol or training settings

    @property
    def id(self) -> str:
        """A readable slug of the parameters that name the cell; also its record's file name."""
        fraction = f"_f{self.train_fraction:g}" if self.train_fraction != 1 else ""
        variant = ""
        if self.task == "scaling":  # strong: batch_size is the global batch; weak: the batch per device
            delay = self.settings.get("straggler_ms", 0)
            nodes = self.settings.get("nodes", 1)
            variant = f"-{self.settings['scaling']}" + (f"-lag{delay:g}ms" if delay else "") + (
                f"-{nodes}nodes" if nodes > 1 else "")
        return (
            f"{self.study}_{self.arch.name}_{self.framework}-{self.engine}_{self.device}{self.devices}-"
            f"{self.parallelism}{variant}_b{self.batch_size}{self._size}_s{self.seed}{fraction}{self._scale}_{self.task}"
        )

    @property
    def _size(self) -> str:
        size = f"-i{self.image_size}" if self.settings.get("size_sweep") else ""
        return size + (f"-{self.settings['data']['dataset']}" if self.settings.get("dataset_sweep") else "")

    @property
    def _scale(self) -> str:
        return f"_p{self.settings['data']['scale']}" if self.settings.get("scale_sweep") else ""

    @property
    def group(self) -> str:
        """Cells of one group run in one process per launch (or one process per device for scaling cells), sharing
        the framework import; a speed or layers job runs every framework's group of its task. Train cells group by
        what their id names besides the seed (train/<framework>/<study>-<arch>[-<data set>][-f<fraction>][-p<scale>]):
        one job per network and data, its seeds together, so that jobs run side by side and land one by one."""
        if self.task == "train":
            fraction = f"-f{self.train_fraction:g}" if self.train_fraction != 1 else ""
            scale = self._scale.replace("_", "-")
            return f"train/{self.framework}/{self.study}-{self.arch.name}{self._size}{fraction}{scale}"
        devices = str(self.devices) if self.task == "scaling" else ""
        return f"{self.task}/{self.framework}{devices}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Cell:
        arch = data["arch"]
        spec = ArchSpec.from_dict(arch["name"], arch, arch["in_channels"], arch["num_classes"])
        return cls(**{**data, "arch": spec})


def _check_engines(engines: dict, where: str, frameworks, training: bool = False) -> None:
    """Every engine named is one of ENGINES (the one list of them; the schema leaves names to it), and a training
    engine none of TIMING_ONLY."""
    for framework in frameworks:
        for engine in ([engines[framework]] if training and framework in engines else engines.get(framework, ())):
            known = [e for e in ENGINES[framework] if not (training and e in TIMING_ONLY)]
            if engine not in known:
                raise SpecError(f"{where}.{framework}: unknown {'training ' if training else ''}engine {engine!r} "
                                f"(known: {', '.join(known)})")


def _check_names(config: dict) -> None:
    for framework in config["frameworks"]:
        if framework not in FRAMEWORKS:
            raise SpecError(f"frameworks: unknown framework {framework!r} (known: {', '.join(FRAMEWORKS)})")
    for where, train in [("train", config["train"])] + [(f"studies.{n}.train", s.get("train", {}))
                                                         for n, s in config["studies"].items()]:
        _check_engines(train.get("engine", {}), f"{where}.engine", config["frameworks"], training=True)
        replicates = train.get("replicate_framework")
        if replicates is not None and replicates not in config["frameworks"]:
            raise SpecError(f"{where}.replicate_framework: {replicates!r} is not one of frameworks "
                            f"({', '.join(config['frameworks'])})")
    _check_engines(config["engines"], "engines", config["frameworks"])
    for where, engines in [("engines", config["engines"])] + [(f"studies.{n}.engines", s.get("engines", {}))
                                                              for n, s in config["studies"].items()]:
        if "cudagraph" in engines.get("torch", ()) and config["device"] != "cuda":
            raise SpecError(f"{where}.torch: cudagraph captures a whole step on a GPU and needs device: cuda "
                            f"(got {config['device']!r})")
    for arch_name in config.get("scaling", {}).get("architectures", []):
        if arch_name not in config["architectures"]:
            raise SpecError(f"scaling.architectures: unknown architecture {arch_name!r}")
    for study_name, study in config["studies"].items():
        _check_engines(study.get("engines", {}), f"studies.{study_name}.engines", config["frameworks"])
        for arch_name in study["architectures"]:
            if arch_name not in config["architectures"]:
                raise SpecError(f"studies.{study_name}.architectures: unknown architecture {arch_name!r}")


def _check_image_size(spec: ArchSpec, size: int, field: str) -> None:
    """Each max-pool divides the maps' size (rounding down): an image smaller than the product of the
    windows leaves no map at all, and the framework fails deep inside the network."""
    needed = math.prod(block.pool for block in spec.blocks)
    if size < needed:
        raise SpecError(f"{field}: images of {size}x{size} are too small for architecture {spec.name}: its "
                        f"max-pools need at least {needed}x{needed}")


def _data(config: dict, study: dict, dataset: str | None = None) -> tuple[dict, int]:
    """A study's data settings (its own `data` over the top-level ones; `dataset` in place of theirs) and the size
    of its images; the planted task's settings are checked here, naming the field, before any cell runs."""
    data = {**config["data"], **study.get("data", {}), **({"dataset": dataset} if dataset else {})}
    size = DATASET_SHAPES[data["dataset"]][1] or config["speed"]["image_size"]
    if data["dataset"] == "planted":
        try:
            Planted(**{k: data[k] for k in PLANTED_KEYS if k in data}).validate(size)
        except DataError as e:
            raise SpecError(str(e)) from None
    return data, size


def _criterion(train: dict, fraction: float) -> dict:
    """When training stops (convbench.run.converged): the monitored quantity (train accuracy by default, or train
    loss) has not improved by min_delta for `patience` epochs (after min_epochs), and a learned radius has moved less
    than radius_delta in that time; `epochs` is the cap. The counts are passes over the cell's own training split: a
    fraction f of it trains until it, too, levels off, under a cap of epochs / f passes (as many steps as the whole
    split's cap), not for as many steps as the whole split (1/f times the cost, and more passes than it needs)."""
    return {"max_epochs": math.ceil(train["epochs"] / fraction), "patience": train.get("patience", 5),
            "min_epochs": train.get("min_epochs", 1), "min_delta": train.get("min_delta", 1e-3),
            "radius_delta": train.get("radius_delta", 0.05), "monitor": train.get("monitor", "train_accuracy")}


def _train_cells(config: dict, arch: dict, name: str, common: dict, study: dict) -> list[Cell]:
    """Every seed in the replicate framework (train.replicate_framework, the first framework by default);
    the first train.repeats seeds (default 1) in any other, a repeat that checks the frameworks agree from
    identical weights and batches (cell.settings.role: 'replicate' or 'repeat'). A study with `scales` trains on the
    planted task at each of them (the learned size's tracking experiment), the scale in the cell's id."""
    if "scales" in study:
        return [c for scale in study["scales"] for c in _train_cells(
            config, arch, name, common, {**{k: v for k, v in study.items() if k != "scales"}, "scale_sweep": True,
                                         "data": {**study.get("data", {}), "scale": scale}})]
    cells = []
    for entry in study.get("datasets", [None]):  # several: each cell's id names its data set
        entry = entry if isinstance(entry, dict) or entry is None else {"dataset": entry}
        own = {**study, **{k: v for k, v in (entry or {}).items() if k == "train_fractions"},
               "train": {**study.get("train", {}), **(entry or {}).get("train", {})}}
        cells += _train_cells_on(config, arch, name, common, own, entry and entry["dataset"])
    return cells


def _train_cells_on(config: dict, arch: dict, name: str, common: dict, study: dict, dataset: str | None) -> list[Cell]:
    train = {**config["train"], **study.get("train", {})}
    data, size = _data(config, study, dataset)
    channels, _, classes = DATASET_SHAPES[data["dataset"]]
    spec = ArchSpec.from_dict(name, arch, channels, classes)
    _check_image_size(spec, size, f"data.dataset ({data['dataset']})")
    settings = {k: v for k, v in train.items() if k not in ("seeds", "batch_size", "engine", "patience", "min_epochs",
                                                            "min_delta", "radius_delta", "monitor", "replicate_framework",
                                                            "repeats", "threads")}
    if dataset:
        settings["dataset_sweep"] = True
    # a network that learns its size is shrunk after training and timed like a speed cell
    settings["timing"] = {k: config["speed"][k] for k in COUNTED_KEYS}
    replicates = train.get("replicate_framework") or config["frameworks"][0]
    role = "replicate" if common["framework"] == replicates else "repeat"
    seeds = train["seeds"] if role == "replicate" else train["seeds"][:train.get("repeats", 1)]
    try:
        n_train, n_test = split_sizes(data["dataset"], data.get("root"), data["test_fraction"],
                                      {k: data[k] for k in PLANTED_KEYS if k in data})
    except DataError as e:
        raise SpecError(str(e)) from None
    where = "data.train_size" if data["dataset"] == "planted" else f"the {data['dataset']} training split"
    if n_test == 0:
        raise SpecError(f"data.dataset: {data['dataset']} holds no test images")
    cells, sweep = [], {"scale_sweep": True} if study.get("scale_sweep") else {}
    for fraction in study.get("train_fractions", [data["train_fraction"]]):
        if math.floor(n_train * fraction) < train["batch_size"]:  # a cell named b64 would train on smaller batches
            raise SpecError(f"train.batch_size: {train['batch_size']} is more than the {math.floor(n_train * fraction)} "
                            f"training images left of {n_train} ({where}) at train fraction {fraction:g}")
        criterion = _criterion(train, fraction)
        cells += [Cell(**{**common, "threads": train.get("threads", 1)}, task="train", arch=spec, batch_size=train["batch_size"], image_size=size, seed=seed,
                       train_fraction=fraction, settings={**settings, **sweep, "epochs": criterion["max_epochs"],
                                                          "criterion": criterion, "role": role, "data": data})
                  for seed in seeds]
    return cells


def _check_repeats(config: dict) -> None:
    """Every timing protocol's min_repeats at most its max_repeats: the loop would stop short of its own minimum."""
    protocols = [("speed", config["speed"])] + [(f"studies.{n}.speed", {**config["speed"], **s["speed"]})
                                                for n, s in config["studies"].items() if "speed" in s]
    if "scaling" in config:
        protocols.append(("scaling", {**config["speed"], **config["scaling"]}))
    for where, protocol in protocols:
        if protocol["min_repeats"] > protocol["max_repeats"]:
            raise SpecError(f"{where}.max_repeats: {protocol['max_repeats']} is below min_repeats "
                            f"({protocol['min_repeats']})")


def _speed_cells(config: dict, arch: dict, name: str, common: dict, study: dict) -> list[Cell]:
    """One speed cell, or a sweep: one per batch (study.batches) x image size (study.image_sizes), timed with the
    study's own protocol settings (study.speed) over the top-level ones. A cell of a sweep over image sizes says its
    size in its id (settings.size_sweep)."""
    speed = {**config["speed"], **study.get("speed", {})}
    spec = ArchSpec.from_dict(name, arch, speed["in_channels"], speed["num_classes"])
    sizes = study.get("image_sizes", [speed["image_size"]])
    for size in sizes:
        _check_image_size(spec, size, "speed.image_size" if "image_sizes" not in study else "studies.image_sizes")
    settings = {k: v for k, v in speed.items() if k not in ("batch_size", "image_size", "in_channels", "num_classes", "layers")}
    train = {**config["train"], **study.get("train", {})}  # a timed step is a training step: the train cells' optimizer
    settings.update(lr=train["lr"], momentum=train["momentum"], optimizer=train["optimizer"])
    if "image_sizes" in study:
        settings["size_sweep"] = True
    return [Cell(**common, task="speed", arch=spec, batch_size=batch, image_size=size, seed=0, settings=dict(settings))
            for size in sizes for batch in study.get("batches", [speed["batch_size"]])]


def _layer_cells(speed_cells: list[Cell]) -> list[Cell]:
    """One cell per framework and distinct convolution shape of the speed cells: the layer-wise split."""
    cells = {}
    for cell in speed_cells:
        for conv, size in conv_sizes(cell.arch, cell.image_size):
            source = cell.arch.blocks[conv.block]
            block = Block(width=conv.out_channels, kernel=conv.kernel, activation=source.activation,
                          pieces=source.pieces, pool=1)
            activation = "relu" if block.pieces == 1 else f"maxout{block.pieces}"
            name = f"c{conv.in_channels}-o{conv.out_channels}-k{conv.kernel}-s{size}-{activation}"
            spec = ArchSpec(name, (block,), conv.in_channels, cell.arch.num_classes)
            layer = dataclasses.replace(cell, study="layers", task="layers", engine="eager", arch=spec, image_size=size)
            cells.setdefault(layer.id, layer)
    return list(cells.values())


def _check_split(spec: ArchSpec, scaling: dict, devices: int) -> None:
    """What the workers would refuse after their launch: a batch or a layer that does not split evenly."""
    strong = "strong" in scaling["scaling"] or any(scaling["straggler_ms"])  # a straggler runs strong scaling
    if "data" in scaling["parallelism"] and strong and scaling["batch_size"] % devices:
        raise SpecError(f"scaling.batch_size: {scaling['batch_size']} does not split over {devices} devices "
                        f"(scaling.devices) in strong data-parallel scaling")
    if "tensor" in scaling["parallelism"]:
        for i, block in enumerate(spec.blocks):
            if block.out_channels % devices:
                raise SpecError(f"scaling.devices: tensor parallel over {devices} devices splits every block's "
                                f"maps, but architectures.{spec.name} block {i} has {block.out_channels}")


def _scaling_cells(config: dict) -> list[Cell]:
    """Several devices: each parallelism, strong and weak, and a straggler, over the device counts.
    One device is the reference: parallelism none (strong and weak coincide there)."""
    scaling, speed = config["scaling"], config["speed"]
    protocol = {k: speed[k] for k in COUNTED_KEYS}
    # independent launches, interleaved like the speed cells'; each launch's loops can then be shorter
    protocol |= {k: scaling[k] for k in ("launches", "max_repeats") if k in scaling}
    base = {**protocol, "lr": config["train"]["lr"], "momentum": config["train"]["momentum"]}
    if any(d > 1 for d in scaling["devices"]) and not scaling["parallelism"]:
        raise SpecError(f"scaling.parallelism: empty, so the cells of {max(scaling['devices'])} devices "
                        f"(scaling.devices) would not run; name one (data, tensor, hybrid)")
    variants = [("none", "strong", 0)]
    for parallelism in scaling["parallelism"]:
        variants += [(parallelism, mode, 0) for mode in scaling["scaling"]]
        variants += [(parallelism, "strong", delay) for delay in scaling["straggler_ms"] if delay]
    cells = []
    for framework in scaling["frameworks"]:
        for name in scaling["architectures"]:
            spec = ArchSpec.from_dict(name, config["architectures"][name], speed["in_channels"], speed["num_classes"])
            _check_image_size(spec, speed["image_size"], "speed.image_size")
            for devices in scaling["devices"]:
                if devices > 1:
                    _check_split(spec, scaling, devices)
                # a job over several nodes: the same devices, split evenly over them (one device stays on one)
                nodes = {"nodes": scaling.get("nodes", 1)} if devices > 1 and scaling.get("nodes", 1) > 1 else {}
                if nodes and devices % nodes["nodes"]:
                    raise SpecError(f"scaling.nodes: {devices} devices (scaling.devices) do not split evenly over "
                                    f"{nodes['nodes']} nodes")
                for parallelism, mode, delay in variants:
                    if (devices == 1) != (parallelism == "none"):
                        continue
                    # TensorFlow's replicas run as one tf.function program (eagerly, MirroredStrategy runs
                    # them in Python threads); PyTorch's ranks are processes running eagerly.
                    engine = "function" if framework == "tensorflow" else "eager"
                    cells.append(Cell(study="scaling", task="scaling", framework=framework, engine=engine, arch=spec,
                                      batch_size=scaling["batch_size"], image_size=speed["image_size"], seed=0,
                                      threads=config["threads"], device=config["device"], devices=devices,
                                      parallelism=parallelism,
                                      settings={**base, "scaling": mode, "straggler_ms": float(delay), **nodes}))
    return cells


def expand(config: dict) -> list[Cell]:
    """Every cell the (schema-validated) config asks for, in a stable order."""
    _check_names(config)
    _check_repeats(config)
    cells = []
    for study_name, study in config["studies"].items():
        engines = {**config["engines"], **study.get("engines", {})}
        train_engines = {**TRAIN_ENGINES, **{**config["train"], **study.get("train", {})}.get("engine", {})}
        for arch_name in study["architectures"]:
            arch = config["architectures"][arch_name]
            for framework in config["frameworks"]:
                if framework not in engines:
                    raise SpecError(f"engines.{framework}: required, as frameworks lists {framework}")
                common = dict(study=study_name, framework=framework, threads=config["threads"], device=config["device"])
                if "train" in study["tasks"]:  # trained once per framework, in its training engine
                    cells += _train_cells(config, arch, arch_name, {**common, "engine": train_engines[framework]}, study)
                if "speed" in study["tasks"]:
                    for engine in engines[framework]:
                        cells += _speed_cells(config, arch, arch_name, {**common, "engine": engine}, study)
    if config["speed"]["layers"]:
        speed = config["speed"]  # a sweep's other batches and sizes get no layer cells of their own
        cells += _layer_cells([c for c in cells if c.task == "speed" and c.batch_size == speed["batch_size"]
                               and c.image_size == speed["image_size"]])
    if "scaling" in config:
        cells += _scaling_cells(config)
    for cell in cells:  # the GPU policy each process applies (and records) before its first cell
        cell.settings["cuda"] = {"cudnn_benchmark": True, "tf32": False, **config.get("cuda", {})}
    for cell in cells:
        if len(cell.id.encode()) > MAX_ID:
            raise SpecError(f"studies.{cell.study}.architectures: the cell of {cell.arch.name[:30]!r}"
                            f"{'...' if len(cell.arch.name) > 30 else ''} is named by {len(cell.id.encode())} "
                            f"characters, more than a record's file name holds ({MAX_ID}); shorten the architecture "
                            f"or study name")
    ids = [c.id for c in cells]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise SpecError(f"studies: cells named twice: {duplicates}")
    return cells


def groups(cells: list[Cell]) -> dict[str, list[Cell]]:
    grouped: dict[str, list[Cell]] = {}
    for cell in cells:
        grouped.setdefault(cell.group, []).append(cell)
    return grouped


# ---- cells handed to another process --------------------------------------------------------------------------
# A job's cells reach `convbench run` (and the parallel workers) in a file: Linux refuses one argument over
# 128 KiB (MAX_ARG_STRLEN), and config/paper.yaml's train job alone holds 418 KB of cells.

def read_cells(source: str | Path) -> list[Cell]:
    """Cells from a JSON file, or from JSON text: a list of Cell.to_dict() dicts, or one."""
    text = str(source)
    raw = json.loads(text if text.lstrip().startswith(("[", "{")) else Path(text).read_text())
    return [Cell.from_dict(c) for c in (raw if isinstance(raw, list) else [raw])]


def _dumps(cells: list[Cell]) -> str:
    return json.dumps([c.to_dict() for c in cells], indent=0)


def write_cells(folder: str | Path, name: str, cells: list[Cell]) -> Path:
    """Write cells to <folder>/<name>-<hash of the cells>.json, atomically, unless it exists; returns its path. The
    name changes with the cells: a Snakemake job that passes it as a parameter reruns when its cells change (and only
    then), as when the cells themselves were the parameter; the file's time plays no part."""
    text = _dumps(cells)
    path = Path(folder) / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}.json"
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
    return path


@contextmanager
def cells_file(cells: list[Cell], folder: str | Path):
    """A file holding cells, for a child process, removed afterwards. It lies in folder (a job's staging folder),
    which every node of a job sees, where /tmp is each node's own."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=folder, prefix=".cells-", suffix=".json.in")  # not *.json: no record
    with os.fdopen(fd, "w") as f:
        f.write(_dumps(cells))
    try:
        yield path
    finally:
        os.unlink(path)
