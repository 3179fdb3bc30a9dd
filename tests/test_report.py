"""`snakemake --report` on a finished tiny run: the figures, tables, records and paper, with captions from
workflow/report/, a category per study and a label column per cell parameter."""
import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import tiny_pipeline

from convbench.analysis.registry import FIGURES, STUDIES


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """A tiny run (PyTorch only, two studies) in a copy of the workflow, then its report: (run dir, data)."""
    work = tmp_path_factory.mktemp("report")
    # several devices left out: minutes more, and the same record wrapper as measure's
    config = tiny_pipeline(work, frameworks=["torch"], engines={"torch": ["eager"]})
    config.pop("scaling")
    (work / "config/config.yaml").write_text(yaml.safe_dump(config))
    for args in (["--cores", "2"], ["--report", "results/tiny/report.html"]):
        result = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=work, capture_output=True, text=True,
                                timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return work / "results" / "tiny", report_data((work / "results/tiny/report.html").read_text())


def report_data(html: str) -> dict:
    """The report's own data, the JavaScript objects `categories` and `results` (both JSON)."""
    data = {}
    for name in ("categories", "results"):
        start = re.search(rf"\bvar {name} = (?=\{{)", html)
        assert start, f"no `var {name} = {{...}}` in the report"
        data[name], _ = json.JSONDecoder().raw_decode(html, start.end())
    return data


def file_bytes(entry: dict) -> bytes:
    return base64.b64decode(entry["data_uri"].split("base64,", 1)[1])


@pytest.mark.slow
def test_the_report_holds_every_figure_with_its_own_caption(report):
    run, data = report
    figures = sorted((run / "generated").glob("*/figures/*.pdf"))
    assert {f.stem for f in figures} == set(FIGURES)
    for figure in figures:
        entry = data["results"][str(figure.relative_to(run.parents[1]))]
        assert file_bytes(entry) == figure.read_bytes()  # the figure itself, not a link to it
        assert entry["mime_type"] == "application/pdf"
        assert entry["labels"] == {"figure": figure.stem}
        # the report names each figure by its registry title; its caption is the paper's
        _, declared = FIGURES[figure.stem]
        assert " ".join(declared.title.split())[:60] in " ".join(entry["caption"].split()), figure.stem


@pytest.mark.slow
def test_the_report_has_a_category_per_study(report):
    run, data = report
    categories = data["categories"]
    kernel, activation = categories[STUDIES["kernel"].title], categories[STUDIES["activation"].title]
    assert {Path(p).stem for p in kernel["Figures"]} == {f.name for f in STUDIES["kernel"].figures}
    assert len(kernel["train records"]) == 2 and len(kernel["speed records"]) == 2  # k3, k5
    assert [Path(p).name for p in activation["speed records"]] == [
        "activation_maxout2-eqparams_torch-eager_cpu1-none_b16_s0_speed.json"]
    assert {Path(p).stem for p in activation["Figures"]} == {f.name for f in STUDIES["activation"].figures}
    tables = {Path(p).stem for p in categories[STUDIES["overview"].title]["Tables"]}
    assert tables == {t.name for t in STUDIES["overview"].tables}
    assert categories["Paper"]["Other"] == ["results/tiny/paper.pdf"]
    assert file_bytes(data["results"]["results/tiny/paper.pdf"]) == (run / "paper.pdf").read_bytes()


@pytest.mark.slow
def test_every_cell_record_is_in_the_report_with_its_parameters_as_labels(report):
    run, data = report
    records = sorted(run.glob("records/**/*.json"))  # train records one folder deeper: per network
    assert len(records) > 5
    for path in records:
        record = json.loads(path.read_text())
        entry = data["results"][str(path.relative_to(run.parents[1]))]
        cell = record["cell"]
        assert entry["labels"] == {
            "architecture": cell["arch"]["name"], "framework": "torch", "engine": "eager",
            "devices": "1 cpu, none", "batch": cell["batch_size"], "seed": 0, "status": "ok"}
        assert record["cell_id"] in entry["caption"]
        assert json.loads(file_bytes(entry)) == record
