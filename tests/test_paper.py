"""The paper builds from fixture records with latexmk, shows their numbers, and refuses an undefined result key."""
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from convbench.analysis import LatexError, activation, analyse, build_pdf, claim, engines, macros, tables, tidy

PAPER = Path(__file__).resolve().parents[1] / "paper"
pytestmark = pytest.mark.skipif(shutil.which("latexmk") is None or shutil.which("pdftotext") is None,
                                reason="latexmk and pdftotext (TeX Live, poppler-utils) are needed to build the paper")



def load_fixtures(name: str):
    """The fixture generators live beside us; load them by path so any pytest import mode works."""
    spec = importlib.util.spec_from_file_location(f"fixtures_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixtures, engine_fixtures = load_fixtures("test_analysis"), load_fixtures("test_analysis_engines")
activation_fixtures = load_fixtures("test_analysis_activation")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    records = fixtures.write_run(root)
    engine_fixtures.write_engines(root)
    activation_fixtures.more_seeds(records)
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
                 "snakemake --cores 2 --configfile config/config.yaml",
                 f"2 of {len(list(records.rglob('*.json')))} cells failed"]:
        assert fact in text
    assert fixtures.FAILED in text.replace("_ ", "_")  # the failed cell's id may wrap after an underscore


def test_pdf_states_directions_from_the_data(built):
    _, _, text = built
    # Fixture times follow the FLOPs: one 5x5 is faster than two stacked 3x3; maxout2-eqwidth is the most accurate.
    assert "one 5×5 convolution per block (k5) was faster than two stacked 3×3 convolutions (k3-stack2)" in text
    # The activation study's seeds: maxout2-eqwidth beats ReLU with intervals apart, maxout2-eqparams overlaps it.
    assert "maxout with k = 2 at equal width (maxout2-eqwidth). On the whole training split" in text
    assert "higher than ReLU’s, the intervals apart" in text
    assert "the intervals overlap, so the two are not distinguishable at this number of seeds" in text
    assert "From 100 % to 25 % of the training split" in text


def test_activation_section_shows_means_intervals_and_fractions(built):
    records, _, text = built
    stats = activation.seed_stats(tidy.tidy(tidy.load_records(records)))
    relu = stats[(stats.setup == "tensorflow-eager") & (stats.arch == "relu") & (stats.train_fraction == 0.25)].iloc[0]
    assert f"{tables.percent(relu.gap)} ± {tables.percent(relu.gap_ci)}" in text  # the gap table
    assert "Maxout against ReLU" in text and "Train/test gap (points)" in text
    assert "Test (%)" in text and "25%" in text and "change" in text  # the table's header, in any reading order
    assert "Max-Feature-Map" in text and "in this run that is maxout2-eqparams and maxout2-eqwidth" in text
    assert "No cell recorded the bytes kept for the backward pass." in text  # the fixtures record no memory


def test_engines_section_shows_the_claim_from_the_records(built):
    records, _, text = built
    loaded = tidy.load_records(records)
    df, samples = tidy.tidy(loaded), tidy.samples(loaded)
    claims = claim.claims(df, samples)
    row = claims[(claims.engine_a == "compile") & (claims.engine_b == "eager") & (claims.arch == "k7")].iloc[0]
    assert claim.interval(row.ratio, row.lo, row.hi) in text  # the claim table
    low = claims.loc[claims.ratio.idxmin()]
    assert f"{tables.ratio(low.ratio)}× (95 % CI {tables.ratio(low.lo)}–{tables.ratio(low.hi)})" in text  # the verdict
    assert "Where the backward time goes" in text and "What became of Caffe and Caffe2" in text
    assert "claim holds for none of them" in text  # the fixture's engines differ by less than 2x
    assert "XlaRuntimeError" in text and "estimated from layer-wise timings" in text
    assert "torch.jit.script is deprecated." in text  # the fairness table's warnings row
    fair = engines.fairness(df, tidy.environment(loaded))
    assert fair.loc["Compile time (median)", "PyTorch compile"] in text


def test_every_key_the_paper_quotes_exists_with_or_without_the_new_studies(tmp_path):
    """A run without engines or layer-wise cells (the default run before issue 3) still defines every key."""
    keys = set()
    for path in [PAPER / "main.tex", *sorted((PAPER / "sections").glob("*.tex"))]:
        keys |= set(re.findall(r"\\cb\{([^}]+)\}", re.sub(r"(?m)%.*$", "", path.read_text())))
    old = fixtures.write_run(tmp_path / "old")
    new = fixtures.write_run(tmp_path / "new")
    engine_fixtures.write_engines(new)
    for records in (old, new):
        analyse(records, records.parent / f"{records.name}-generated", reference_root=tmp_path / "no-reference")
        written = (records.parent / f"{records.name}-generated" / "macros.tex").read_text()
        values = set(re.findall(r"\\cbset\{([^}]+)\}", written))
        assert keys <= values, sorted(keys - values)


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
