import copy
import subprocess
import sys

import pytest
import yaml

from convbench import cells, config

with open("config/config.yaml") as f:
    DEFAULT = yaml.safe_load(f)


def changed(path: str, value):
    """The default config with one field (dotted path) replaced."""
    result = copy.deepcopy(DEFAULT)
    *parents, last = path.split(".")
    node = result
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[int(last) if isinstance(node, list) else last] = value
    return result


def test_default_config_expands_to_every_cell_once():
    found = config.check(DEFAULT)
    assert len({c.id for c in found}) == len(found)
    for study_name, study in DEFAULT["studies"].items():
        engines = {**DEFAULT["engines"], **study.get("engines", {})}
        runs = sum(len(engines[f]) for f in DEFAULT["frameworks"]) * len(study["architectures"])
        mine = [c for c in found if c.study == study_name]
        sweep = len(study.get("batches", [1])) * len(study.get("image_sizes", [1]))  # a sweep: one cell per point
        assert len([c for c in mine if c.task == "speed"]) == runs * sweep * ("speed" in study["tasks"])
        fractions = len(study.get("train_fractions", [DEFAULT["data"]["train_fraction"]])) * len(study.get("scales", [0]))
        # trained once per framework: every seed in the replicate framework, the first one in each other framework
        seeds = {**DEFAULT["train"], **study.get("train", {})}["seeds"]
        repeats = {**DEFAULT["train"], **study.get("train", {})}.get("repeats", 1)
        trained = len(study["architectures"]) * (len(seeds) + repeats * (len(DEFAULT["frameworks"]) - 1)) * fractions \
            * ("train" in study["tasks"])
        assert len([c for c in mine if c.task == "train"]) == trained
    expected = {f"{t}/{f}" for t in ("speed", "layers") for f in DEFAULT["frameworks"]}
    expected |= {f"scaling/{f}{n}" for f in DEFAULT["scaling"]["frameworks"] for n in DEFAULT["scaling"]["devices"]}
    grouped = cells.groups(found)
    assert {g for g in grouped if not g.startswith("train/")} == expected
    # train cells: one group per framework, study, network (and scale): its seeds
    for group, members in grouped.items():
        if group.startswith("train/"):
            assert len({(c.framework, c.study, c.arch.name, c.settings["data"].get("scale")) for c in members}) == 1
            assert len({c.seed for c in members}) == len(members)
    assert sum(len(m) for g, m in grouped.items() if g.startswith("train/")) == len([c for c in found if c.task == "train"])


def test_layer_cells_cover_every_convolution_of_the_speed_cells_once():
    from convbench.spec import conv_sizes

    found = config.check(DEFAULT)
    layers = {(c.framework, c.arch.in_channels, c.arch.blocks[0], c.image_size) for c in found if c.task == "layers"}
    assert len(layers) == len([c for c in found if c.task == "layers"])
    for cell in (c for c in found if c.task == "speed"):
        for conv, size in conv_sizes(cell.arch, cell.image_size):
            block = cell.arch.blocks[conv.block]
            wanted = (cell.framework, conv.in_channels, type(block)(conv.out_channels, conv.kernel, 1, block.activation,
                                                                    block.pieces, 1), size)
            assert wanted in layers, (cell.id, conv)


def test_cell_id_names_its_parameters_and_round_trips():
    found = config.check(DEFAULT)
    cell = next(c for c in found if c.task == "speed" and c.arch.name == "k5-w8")
    assert cell.id == "kernel_k5-w8_torch-eager_cpu1-none_b64_s0_speed"
    assert cells.Cell.from_dict(cell.to_dict()) == cell
    found = config.check(changed("studies.activation.train_fractions", [0.25, 1.0]))
    shrunk = next(c for c in found if c.task == "train" and c.train_fraction == 0.25)
    assert shrunk.id.endswith("_f0.25_train") and cells.Cell.from_dict(shrunk.to_dict()) == shrunk


def test_the_paper_config_is_valid():
    with open("config/paper.yaml") as f:
        paper = yaml.safe_load(f)
    found = config.check(paper)
    assert {c.arch.blocks[0].pieces for c in found if c.study == "activation"} == {1, 2, 3, 4}
    assert {c.train_fraction for c in found if c.study == "activation" and c.task == "train"} == {0.25, 0.5, 1.0}


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("frameworks", ["torch", "mxnet"], r"frameworks\.1: 'mxnet' is not one of"),
        ("architectures.k3.blocks.0.activation", "tanh", r"architectures\.k3\.blocks\.0\.activation: 'tanh' is not one of"),
        ("architectures.k3.blocks.0.kernel", 0, r"architectures\.k3\.blocks\.0\.kernel: 0 is less than the minimum of 1"),
        ("architectures.k3.blocks.0.kernel", 4, r"architectures\.k3\.blocks\[0\]\.kernel: must be odd"),
        ("architectures.maxout2-eqparams.blocks.0.width", 33, r"architectures\.maxout2-eqparams\.blocks\[0\]\.pieces: must divide width 33"),
        ("studies.kernel.architectures", ["k3", "k11"], r"studies\.kernel\.architectures: unknown architecture 'k11'"),
        ("train.epochs", "ten", r"train\.epochs: 'ten' is not of type 'integer'"),
        ("data.dataset", "imagenet", r"data\.dataset: 'imagenet' is not one of"),
        ("speed.warmup", -1, r"speed\.warmup: -1 is less than the minimum of 0"),
        ("studies.engines.engines.torch", ["eager", "jit"], r"studies\.engines\.engines\.torch: unknown engine 'jit'"),
        ("speed.layers", "yes", r"speed\.layers: 'yes' is not of type 'boolean'"),
        # integers written as floats: JSON Schema alone counts 2.0 as an integer
        ("threads", 2.0, r"threads: 2\.0 is not of type 'integer'"),
        ("speed.batch_size", 64.0, r"speed\.batch_size: 64\.0 is not of type 'integer'"),
        # images the pools would shrink to nothing
        ("speed.image_size", 2, r"data\.scale: must fit the 2x2 images"),  # the planted task is drawn at this size
        ("architectures.k3-w8.blocks", [{"width": 8}] * 5, r"data\.dataset \(planted\): images of 16x16 are too small "
                                                           r"for architecture k3-w8: its max-pools need at least 32x32"),
        # several devices that cannot split the work
        ("scaling.devices", [1, 3], r"scaling\.batch_size: 64 does not split over 3 devices \(scaling\.devices\)"),
        ("scaling", {**DEFAULT["scaling"], "devices": [1, 3], "batch_size": 48},
         r"scaling\.devices: tensor parallel over 3 devices splits every block's maps, but architectures\.k3 block 0 "
         r"has 32"),
        # a framework without engines (now that a config stands alone, nothing fills them in)
        ("engines", {"torch": ["eager"]}, r"engines\.tensorflow: required, as frameworks lists tensorflow"),
        # numbers that pass every minimum: NaN and infinity
        ("train.lr", float("nan"), r"train\.lr: nan is not of type 'number'$"),
        ("train.lr", float("inf"), r"train\.lr: inf is not of type 'number'$"),
        ("scaling.straggler_ms", [float("nan")], r"scaling\.straggler_ms\.0: nan is not of type 'number'$"),
        # results/<run>/ outside results/
        ("run", "..", r"run: '\.\.' is not allowed: results go to results/<run>/, so a folder "),
        ("run", ".", r"run: '\.' is not allowed: results go to results/<run>/, so a folder "),
        ("run", "/tmp/elsewhere", r"run: '/tmp/elsewhere' is not allowed: results go to results/<run>/, so a folder "),
        ("run", "a/b", r"run: 'a/b' is not allowed: results go to results/<run>/, so a folder "),
        # more in a batch than the training split holds: the cell would say b64 and train on fewer
        ("data.train_size", 1, r"train\.batch_size: 64 is more than the 1 training images left of 1 \("
                               r"data\.train_size\) at train fraction 1$"),
        ("train.batch_size", 5000, r"train\.batch_size: 5000 is more than the 2000 training images left of 2000"),
        ("data.train_fraction", 0.01, r"train\.batch_size: 64 is more than the 20 training images left of 2000 "
                                      r"\(data\.train_size\) at train fraction 0\.01$"),
        ("studies.kernel.data", {"dataset": "digits", "train_fraction": 0.01},
         r"train\.batch_size: 64 is more than the 13 training images left of 1347 \(the digits training split\)"),
        # protocols that cannot hold
        ("speed.min_repeats", 50, r"speed\.max_repeats: 30 is below min_repeats \(50\)$"),
        ("studies.overhead.speed.min_repeats", 20, r"studies\.overhead\.speed\.max_repeats: 15 is below min_repeats"),
        ("scaling.max_repeats", 4, r"scaling\.max_repeats: 4 is below min_repeats \(6\)$"),
        ("scaling.parallelism", [], r"scaling\.parallelism: empty, so the cells of 2 devices \(scaling\.devices\) "
                                    r"would not run"),
        # a study's own data set read from files, but no folder named
        ("studies.kernel.data", {"dataset": "cifar10"},
         r"studies\.kernel\.data\.root: must name the directory holding cifar10$"),
    ],
)
def test_bad_config_names_the_field(path, value, message):
    with pytest.raises(config.ConfigError, match=r"^config: " + message):
        config.check(changed(path, value))


def test_missing_data_directory_names_the_field_and_path(tmp_path):
    bad = changed("data", {**DEFAULT["data"], "dataset": "cifar10", "root": str(tmp_path / "nowhere")})
    with pytest.raises(config.ConfigError, match=r"data\.root: .*nowhere.* does not exist"):
        config.check(bad)


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("run: [unclosed\n")
    with pytest.raises(config.ConfigError, match=r"broken\.yaml: not valid YAML \(line 2, column 1\): ") as raised:
        config.load(path)
    assert "\n" not in str(raised.value)


def test_a_key_given_twice_is_refused_with_its_line(tmp_path):
    path = tmp_path / "twice.yaml"
    text = yaml.safe_dump(DEFAULT, sort_keys=False)
    path.write_text(text.replace("  k7:", "  k5:"))  # two architectures named k5: PyYAML keeps the last
    line = text.splitlines().index("  k7:") + 1
    with pytest.raises(config.ConfigError, match=rf"twice\.yaml: not valid YAML \(line {line}, column 3\): "
                                                 r"duplicate key 'k5'$"):
        config.load(path)


def test_a_config_may_leave_out_studies_and_scaling():
    alone = {k: v for k, v in changed("studies", {"kernel": DEFAULT["studies"]["kernel"]}).items() if k != "scaling"}
    found = config.check({**alone, "frameworks": ["torch"], "engines": {"torch": ["eager"]}})
    assert {c.study for c in found} == {"kernel", "layers"} and {c.framework for c in found} == {"torch"}
    assert {c.group for c in found} == {"speed/torch", "layers/torch"} | {
        f"train/torch/kernel-{name}" for name in DEFAULT["studies"]["kernel"]["architectures"]}


def test_hardware_beyond_this_machine_is_refused_naming_the_field():
    many = changed("scaling.devices", [1, config.cores() + 1])
    many["scaling"].update(parallelism=["data"], scaling=["weak"], straggler_ms=[])  # nothing to split evenly
    with pytest.raises(config.ConfigError, match=rf"^config: scaling\.devices: {config.cores() + 1} CPU devices need"):
        config.check_hardware(config.check(many))
    with pytest.raises(config.ConfigError, match=r"^config: threads: \d+ threads, but this machine gives this process"):
        config.check_hardware(config.check(changed("threads", config.cores() + 1)))
    if config.cores() >= 2:  # what the README promises: the default config runs on 2 cores
        config.check_hardware(config.check(DEFAULT))
    if config.gpus() == 0:
        with pytest.raises(config.ConfigError, match=r"^config: device: cuda, but nvidia-smi finds no NVIDIA GPU"):
            config.check_hardware(config.check(changed("device", "cuda")))


def test_devices_over_several_nodes_are_checked_per_node():
    """scaling.nodes: the devices split evenly over the nodes; each node (taken to be like this one) needs its share."""
    def over(devices: int, nodes: int) -> dict:
        many = changed("scaling.devices", [1, devices])
        many["scaling"].update(parallelism=["data"], scaling=["weak"], straggler_ms=[], nodes=nodes)
        return many

    n = config.cores()
    found = config.check(over(2 * n, 2))
    config.check_hardware(found)  # n per node: fits
    spread = [c for c in found if c.devices == 2 * n]
    assert spread and all(c.settings["nodes"] == 2 and c.id.endswith("-2nodes_b64_s0_scaling") for c in spread)
    assert all("nodes" not in c.settings for c in found if c.devices == 1)  # one device stays on one node
    with pytest.raises(config.ConfigError, match=rf"^config: scaling\.devices: {4 * n + 2} devices over 2 nodes "
                       rf"\(scaling\.nodes\) are {2 * n + 1} per node: {2 * n + 1} CPU devices need a core each"):
        config.check_hardware(config.check(over(4 * n + 2, 2)))
    with pytest.raises(config.ConfigError, match=r"^config: scaling\.nodes: 3 devices \(scaling\.devices\) do not"):
        config.check(over(3, 2))


def test_cli_rejects_bad_config_and_leaves_records_alone(tmp_path):
    records = tmp_path / "records"
    records.mkdir()
    kept = records / "earlier.json"
    kept.write_text('{"status": "ok"}')
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(changed("architectures.k3.blocks.0.kernel", -3)))
    result = subprocess.run([sys.executable, "-m", "convbench", "run", "--config", str(bad), "--out", str(records)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "bad.yaml: architectures.k3.blocks.0.kernel" in result.stderr
    assert [p.name for p in records.iterdir()] == ["earlier.json"]
    assert kept.read_text() == '{"status": "ok"}'


def test_a_training_fraction_takes_as_many_steps_as_the_whole_split():
    fractions = changed("studies.activation.train_fractions", [0.25, 1.0])
    found = [c for c in config.check(fractions) if c.task == "train" and c.study == "activation" and c.seed == 0]
    epochs = {c.train_fraction: c.settings["epochs"] for c in found}
    assert epochs[0.25] == 4 * epochs[1.0] == 4 * DEFAULT["train"]["epochs"]


def test_a_name_too_long_for_a_record_file_is_refused_before_training():
    """A 300-character architecture name trained, then failed to write its record: File name too long."""
    long = "k" * 300
    mine = changed("architectures", {**DEFAULT["architectures"], long: DEFAULT["architectures"]["k3"]})
    mine["studies"]["kernel"]["architectures"] = [long]
    with pytest.raises(config.ConfigError, match=rf"^config: studies\.kernel\.architectures: the cell of 'k{{30}}'\.\.\. "
                                            rf"is named by \d+ characters, more than a record's file name holds "
                                            rf"\({cells.MAX_ID}\); shorten the architecture or study name$"):
        config.check(mine)


@pytest.mark.parametrize("field, value, message", [
    ("engines", {"torch": ["eager", "jit"], "tensorflow": ["eager"]},
     r"engines\.torch: unknown engine 'jit' \(known: eager, torchscript, compile, cudagraph\)"),
    ("train", {**DEFAULT["train"], "engine": {"torch": "cudagraph"}},
     r"train\.engine\.torch: unknown training engine 'cudagraph' \(known: eager, torchscript, compile\)"),
])
def test_engines_are_named_from_the_one_list(field, value, message):
    """An engine is added in cells.ENGINES and its backend: the schema leaves names to that list, which every config
    is checked against (training engines less the ones that only time)."""
    with pytest.raises(config.ConfigError, match=message):
        config.check(changed(field, value))


