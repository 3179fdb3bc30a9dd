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
    studies = DEFAULT["studies"]
    per_framework = sum(
        len(s["architectures"]) * (("train" in s["tasks"]) * len(DEFAULT["train"]["seeds"]) + ("speed" in s["tasks"]))
        for s in studies.values()
    )
    assert len(found) == per_framework * len(DEFAULT["frameworks"])
    assert len({c.id for c in found}) == len(found)
    assert set(cells.groups(found)) == {f"{t}/{f}" for t in ("train", "speed") for f in DEFAULT["frameworks"]}


def test_cell_id_names_its_parameters_and_round_trips():
    cell = next(c for c in config.check(DEFAULT) if c.task == "speed" and c.arch.name == "k5")
    assert cell.id == "kernel_k5_torch-eager_cpu1-none_b64_s0_speed"
    assert cells.Cell.from_dict(cell.to_dict()) == cell


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("frameworks", ["torch", "mxnet"], r"frameworks\.1: 'mxnet' is not one of"),
        ("architectures.k3.blocks.0.activation", "tanh", r"architectures\.k3\.blocks\.0\.activation: 'tanh' is not one of"),
        ("architectures.k3.blocks.0.kernel", 0, r"architectures\.k3\.blocks\.0\.kernel: 0 is less than the minimum of 1"),
        ("architectures.k5.blocks.0.kernel", 4, r"architectures\.k5\.blocks\[0\]\.kernel: must be odd"),
        ("architectures.maxout2-eqparams.blocks.0.width", 33, r"architectures\.maxout2-eqparams\.blocks\[0\]\.pieces: must divide width 33"),
        ("studies.kernel.architectures", ["k3", "k11"], r"studies\.kernel\.architectures: unknown architecture 'k11'"),
        ("train.epochs", "ten", r"train\.epochs: 'ten' is not of type 'integer'"),
        ("data.dataset", "imagenet", r"data\.dataset: 'imagenet' is not one of"),
        ("speed.warmup", -1, r"speed\.warmup: -1 is less than the minimum of 0"),
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
    with pytest.raises(config.ConfigError, match=r"broken\.yaml: not valid YAML"):
        config.load(path)


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
