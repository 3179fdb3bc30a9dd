"""The learned study's rows of the tidy table (its Study.rows hook): what the masks and gates kept, epoch by epoch,
and what crop and prune kept."""
from __future__ import annotations

from convbench.analysis.records import Record, Summary
from convbench.analysis.tidy import COLUMNS, network_field
from convbench.spec import ArchSpec, covering_field

LEARNING_STUDIES = ("learned", "tracking")  # whose cells learn their kernel sizes or filter counts


def rows(record: Record) -> list[dict]:
    """The learned study's: per epoch and block, what the masks and gates kept; what crop and prune kept.

    radius, open_maps (phase epoch; epoch 0 is the initialisation, read from the spec; open maps counted with the
    test-time gate); kept_kernel, kept_maps, shrunk_width (phase shrunk, per block); shrunk_params, shrunk_flops,
    shrunk_test_accuracy, max_logit_difference (phase shrunk); step_time (phase learned or shrunk: a training step of
    the masked or gated network and of the shrunk one, at the training input).
    """
    from convbench.learned import test_gate

    if record.cell.study not in LEARNING_STUDIES or not record.epochs:
        return []
    blocks, rows = record.cell.blocks, []

    def add(metric, phase, value, epoch=None, block=None, s: Summary | None = None):
        rows.append(dict(zip(COLUMNS, [metric, phase, value, *([s.iqr, s.cv, s.n, s.noisy] if s else [None] * 4),
                                       epoch, block])))

    for i, b in enumerate(blocks):
        if b.get("init_radius") is not None:
            add("radius", "epoch", float(b["init_radius"]), 0, i)
        if b.get("gates"):
            maps = b["width"] // b.get("pieces", 1)
            add("open_maps", "epoch", float(int(test_gate(b.get("init_log_alpha", 2.0)) > 0) * maps), 0, i)
    for n, epoch in enumerate(record.epochs, 1):
        for key, value in (epoch.get("learned") or {}).items():
            where, _, quantity = key.rpartition(".")
            if where.startswith("blocks.") and quantity in ("radius", "open_maps") and value is not None:
                add(quantity, "epoch", float(value), epoch.get("epoch", n), int(where.split(".")[1]))
    shrunk = record.learned
    for i, kept in enumerate(shrunk.get("kept") or []):
        add("kept_kernel", "shrunk", kept["kernel"], block=i)
        add("kept_maps", "shrunk", kept["maps"], block=i)
    for i, b in enumerate((shrunk.get("shrunk_arch") or {}).get("blocks") or []):
        add("shrunk_width", "shrunk", b["width"], block=i)
    if (shrunk.get("shrunk_arch") or {}).get("blocks"):
        add("shrunk_field", "shrunk", network_field(shrunk["shrunk_arch"]["blocks"]))
    scale = (record.cell.settings.get("data") or {}).get("scale")
    if scale is not None and (record.cell.settings.get("data") or {}).get("dataset") == "planted":
        covering = covering_field(ArchSpec.from_dict("record", {"blocks": list(blocks)}), scale)
        if covering is not None:
            add("covering_field", "shrunk", covering)
    if record.convergence.get("learning_started_epoch") is not None:  # the second phase's first epoch
        add("learning_started_epoch", "final", record.convergence["learning_started_epoch"])
    for metric, key in [("shrunk_params", "params"), ("shrunk_flops", "flops_forward"),
                        ("shrunk_test_accuracy", "test_accuracy"), ("max_logit_difference", "max_logit_difference")]:
        if shrunk.get(key) is not None:
            add(metric, "shrunk", shrunk[key])
    for net in ("learned", "shrunk"):
        if (s := Summary.read((shrunk.get("step") or {}).get(net))) is not None:
            add("step_time", net, s.median, s=s)
    return rows
