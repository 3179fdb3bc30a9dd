"""The paper builds from fixture records with latexmk, shows their numbers, and refuses an undefined result key."""
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from convbench.analysis import LatexError, analyse, build_pdf, tables

PAPER = Path(__file__).resolve().parents[1] / "paper"
pytestmark = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
                                reason="latexmk and pdftotext (TeX Live, poppler-utils) are needed to build the paper")

# The fixture generator lives beside us in test_analysis.py; load it by path so any pytest import mode works.
_spec = importlib.util.spec_from_file_location("analysis_fixtures", Path(__file__).with_name("test_analysis.py"))
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    records = fixtures.write_run(root)
    analyse(records, root / "generated", command="snakemake --cores 2 --configfile config/config.yaml")
    pdf = build_pdf(root / "generated", root / "paper.pdf", paper_dir=PAPER)
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return records, pdf, " ".join(text.split())


def test_pdf_shows_the_records_numbers(built):
    records, pdf, text = built
    assert pdf.read_bytes().startswith(b"%PDF")
    k5 = fixtures.load(records, study="kernel", arch="k5", framework="torch", task="speed")
    backward = k5["timings"]["phases"]["backward"]
    assert tables.ms(backward["median"], backward["iqr"]) in text  # speed table
    assert tables.thousands(k5["counts"]["params"]) in text  # architectures table
    relu = fixtures.load(records, study="activation", arch="relu", framework="tensorflow", task="train")
    assert tables.percent(relu["training"]["epochs"][-1]["test_accuracy"]) in text  # accuracy table
    for fact in ["2.21.0", "3.15.1", "2.13.0+cpu", "abc123def456", "AMD EPYC 7B13", "ResourceExhaustedError",
                 "snakemake --cores 2 --configfile config/config.yaml", "1 of 32 cells failed"]:
        assert fact in text
    assert fixtures.FAILED in text.replace("_ ", "_")  # the failed cell's id may wrap after an underscore


def test_pdf_states_directions_from_the_data(built):
    _, _, text = built
    # Fixture times follow the FLOPs: one 5x5 is faster than two stacked 3x3; maxout2-eqwidth is the most accurate.
    assert "one 5×5 convolution per block (k5) was faster than two stacked 3×3 convolutions (k3-stack2)" in text
    assert "reached higher test accuracy than relu" in text


def test_undefined_result_key_stops_the_build(tmp_path, built):
    records, _, _ = built
    paper = tmp_path / "paper"
    shutil.copytree(PAPER, paper)
    threats = paper / "sections" / "threats.tex"
    threats.write_text(threats.read_text() + "\nThe run took \\cb{missing-key} hours.\n")
    analyse(records, tmp_path / "generated")
    with pytest.raises(LatexError, match="missing-key"):
        build_pdf(tmp_path / "generated", tmp_path / "paper.pdf", paper_dir=paper)
    assert not (tmp_path / "paper.pdf").exists()


def test_no_number_is_typed_into_the_paper():
    """Results come through \\cb{...} or generated tables; decimals and percentages typed by hand are not allowed."""
    for path in [PAPER / "main.tex", *sorted((PAPER / "sections").glob("*.tex"))]:
        text = re.sub(r"(?m)%.*$", "", path.read_text())
        text = re.sub(r"\d*\.?\d+\s*(?:\\linewidth|\\textwidth|pt|mm|cm|em)\b", "", text)  # lengths are layout
        typed = re.findall(r"\d+\.\d+|\d+\s*\\?%|\d+\s*(?:ms|s)\b|\d+\s*\\times\s*(?:as|faster|slower)", text)
        assert not typed, f"{path.name}: typed numbers {typed}"
