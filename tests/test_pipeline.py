"""The real pipeline: Snakemake's dry run and lint on the default config, and a tiny real run to the PDF."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import tiny_pipeline

from convbench import config
from convbench.analysis import registry
from convbench.analysis.formatting import ms

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args, cwd=ROOT, timeout=900):
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_dry_run_of_the_default_config_plans_every_stage():
    result = snakemake("-n", "--cores", "2", "--forceall")
    assert result.returncode == 0, result.stderr
    stats = (result.stdout + result.stderr).split("Job stats:")[1].split("\n\n")[0]  # the table "job  count"
    rows = [line.split() for line in stats.splitlines()]
    jobs = {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}
    studies = len(registry.STUDIES)  # one analysis job per study, after one tidy table
    # one training job per framework, network and data set (its seeds together), as the cells group them
    train = len({c.group for c in config.check(config.read(ROOT / "config/config.yaml")) if c.task == "train"})
    assert train > 2
    # one measuring job per timed task (speed, layers), both frameworks' launches interleaved in it
    assert jobs == {"all": 1, "measure": 2, "scaling": 4, "train": train, "tidy": 1, "analyse": studies, "paper": 1,
                    "total": 9 + train + studies}


def test_lint_reports_nothing():
    result = snakemake("--lint")
    assert result.returncode == 0
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


def test_a_bad_config_stops_the_pipeline_before_any_job(tmp_path):
    bad = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    bad["architectures"]["k3"]["blocks"][0]["pieces"] = 3
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = snakemake("-n", "--cores", "1", "--configfile", str(tmp_path / "bad.yaml"))
    assert result.returncode != 0
    assert "architectures.k3.blocks[0].pieces: must be 1 for relu" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The whole pipeline on a tiny config in a copy of the workflow; returns its results directory."""
    work = tmp_path_factory.mktemp("pipeline")
    scaling = yaml.safe_load((ROOT / "config/config.yaml").read_text())["scaling"]
    scaling.update(frameworks=["torch"], architectures=["k3"], devices=[1, 2], parallelism=["data"],
                   scaling=["strong"], batch_size=16, straggler_ms=[])
    tiny_pipeline(work, scaling=scaling)
    result = snakemake("--cores", "2", cwd=work)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return work / "results" / "tiny"


def records(run_dir):
    return [json.loads(p.read_text()) for p in sorted(run_dir.glob("records/**/*.json"))]  # train: one folder deeper


@pytest.mark.slow
def test_tiny_run_writes_one_ok_record_per_cell(tiny_run):
    from convbench.config import load

    _, cells = load(tiny_run.parents[1] / "config" / "config.yaml")
    found = records(tiny_run)
    assert sorted(r["cell_id"] for r in found) == sorted(c.id for c in cells)
    assert {r["cell"]["task"] for r in found} == {"train", "speed", "layers", "scaling"}
    assert {r["status"] for r in found} == {"ok"}
    assert (tiny_run / "generated" / "tidy.csv").stat().st_size > 0


@pytest.mark.slow
def test_tiny_run_pdf_quotes_numbers_from_the_records(tiny_run):
    pdf = tiny_run / "paper.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    text = " ".join(text.split())
    for record in records(tiny_run):
        if record["cell"]["task"] == "speed":
            assert f"{record['counts']['params']:,}" in text, record["cell_id"]
            backward = record["timings"]["phases"]["backward"]
            assert ms(backward["median"], backward["iqr"]) in text, record["cell_id"]
    commit = records(tiny_run)[0]["environment"]["git_commit"]
    assert commit[:7] in text
