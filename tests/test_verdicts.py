"""The decision rule every verdict follows (issue 20): four outcomes against a practical margin, three for the
several-times claim; words rendered from one table; a macro key written twice or outside its study stops the
analysis."""
import math

import pandas as pd
import pytest

from convbench.analysis import KeyClash, analyse_study, gather
from convbench.analysis.formatting import KIND_PHRASES, WORDS, verdict_word
from convbench.analysis.stats import (
    Kind,
    Margins,
    Outcome,
    Paired,
    decide_points,
    decide_ratio,
    decide_several,
    paired_verdicts,
    time_verdict,
)
from convbench.analysis.study import Run, Study


def test_a_time_ratio_has_four_outcomes_against_its_margin():
    assert decide_ratio(1.06, 1.2) is Outcome.SLOWER and decide_ratio(0.5, 0.95) is Outcome.FASTER
    assert decide_ratio(0.96, 1.04) is Outcome.EQUIVALENT
    # the flips: near a line, both runs undecided instead of 'slower' against 'about as fast'
    assert decide_ratio(1.01, 1.07) is Outcome.UNDECIDED and decide_ratio(0.909, 1.19) is Outcome.UNDECIDED
    assert decide_ratio(math.nan, math.nan) is Outcome.UNDECIDED
    assert decide_ratio(1.06, 1.2, margin=1.10) is Outcome.UNDECIDED  # a wider margin from the config


def test_a_difference_in_points_has_four_outcomes_against_one_point():
    assert decide_points(0.011, 0.05) is Outcome.HIGHER and decide_points(-0.05, -0.011) is Outcome.LOWER
    assert decide_points(-0.008, 0.009) is Outcome.EQUIVALENT and decide_points(-0.002, 0.02) is Outcome.UNDECIDED


def test_the_several_times_claim_has_three_outcomes():
    # the flip: 0.387 [0.345, 0.436] and 0.406 [0.317, 0.521] were 'several times faster' and 'faster'
    assert decide_several(0.345, 0.436) is Outcome.AT_LEAST and decide_several(0.317, 0.521) is Outcome.UNDECIDED
    assert decide_several(0.6, 1.9) is Outcome.LESS_THAN


def test_the_margins_come_from_the_config_section():
    m = Margins.from_config({"time": 0.1, "accuracy": 2})
    assert (m.ratio, m.accuracy) == (pytest.approx(1.1), pytest.approx(0.02))
    assert Margins.from_config(None) == Margins()


def test_words_come_from_the_one_table_and_every_outcome_has_them():
    v = time_verdict("x/r", "a", "b", "backward time", 0.5, 0.4, 0.6, Kind.LAUNCHES)
    assert v.outcome is Outcome.FASTER and verdict_word(v) == WORDS[("time", Outcome.FASTER)]
    for scale in ("time", "accuracy", "gap", "overfit", "size"):
        assert {o for s, o in WORDS if s == scale} >= {Outcome.EQUIVALENT, Outcome.UNDECIDED}
    assert set(KIND_PHRASES) == set(Kind)


def test_paired_verdicts_carry_their_holm_level_and_kind():
    found = paired_verdicts([Paired("x/a", "a", "b", "test accuracy", (0.03, 0.031, 0.029)),
                             Paired("x/b", "a", "c", "test accuracy", (0.001, -0.002, 0.0))])
    assert [v.kind for v in found] == [Kind.SEEDS, Kind.SEEDS] and found[0].outcome is Outcome.HIGHER
    assert found[0].level == pytest.approx(0.975) and found[1].outcome is Outcome.EQUIVALENT


def test_a_key_written_twice_or_outside_its_study_stops_the_analysis(tmp_path):
    with pytest.raises(KeyClash, match="written twice: by kernel.values and by kernel.verdicts"):
        gather([("kernel.values", {"kernel/a": "1"}), ("kernel.verdicts", {"kernel/a": "2"})], "kernel")
    with pytest.raises(KeyClash, match="'env/cpu' written by overview.values lies outside .* prefix overview/"):
        gather([("overview.values", {"env/cpu": "x"})], "overview")
    clash = Study("kernel", "Kernel", values=lambda run: {"kernel/x-ratio": "1.00"},
                  verdicts=lambda run: [time_verdict("kernel/x-ratio", "a", "b", "t", 1, 0.9, 1.1, Kind.LAUNCHES)])
    with pytest.raises(KeyClash, match="kernel/x-ratio"):
        analyse_study(clash, Run(pd.DataFrame(), pd.DataFrame(), pd.DataFrame()), tmp_path)
    assert not (tmp_path / "macros.tex").exists()


def test_a_tally_names_only_the_outcomes_that_occurred():
    """'higher in 1 and undecided in 2', never 'higher in 1, lower in 0, equivalent in 0 and undecided in 2'."""
    from convbench.analysis.formatting import tally

    labels = {Outcome.HIGHER: "higher", Outcome.LOWER: "lower", Outcome.EQUIVALENT: "equivalent",
              Outcome.UNDECIDED: "undecided"}
    found = [Outcome.UNDECIDED, Outcome.HIGHER, Outcome.UNDECIDED]
    assert tally(found, labels) == "higher in 1 and undecided in 2"
    assert tally([*found, Outcome.LOWER], labels) == "higher in 1, lower in 1 and undecided in 2"
    assert tally([], labels) == "none"


def test_a_tally_with_its_total_never_reads_one_of_one():
    """tally_of counts the outcomes that occurred and says the total once: one comparison is 'its one', every
    comparison alike is 'all n', and none is a dash, never 'in 1 of 1' or 'in 0'."""
    from convbench.analysis.formatting import tally_of
    words = {Outcome.HIGHER: "higher", Outcome.UNDECIDED: "undecided"}
    assert tally_of([Outcome.UNDECIDED], words) == "undecided in its one comparison"
    assert tally_of([Outcome.HIGHER] * 3, words, "pair") == "higher in all 3 pairs"
    assert tally_of([Outcome.HIGHER, Outcome.UNDECIDED, Outcome.UNDECIDED], words) == \
        "higher in 1 and undecided in 2 of 3 comparisons"
    assert tally_of([], words) == "--"


def test_a_quoted_end_never_prints_as_the_margin_it_misses():
    """The abstract quoted 0.4 [-0.2, 1.0] points for an undecided comparison whose end was 1.05 (the table: 1.05):
    rounded to the margin, an interval looks wholly inside it. Each end gets the digits that show its side."""
    from convbench.analysis import verdict_values
    from convbench.analysis.stats import Verdict
    points = Verdict("a/diff", "x", "y", "test accuracy", 0.004, -0.002, 0.01049, Outcome.UNDECIDED, Kind.SEEDS,
                     0.01, "points", "accuracy", 20)
    values = verdict_values(points)
    assert (values["a/diff"], values["a/diff-lo"], values["a/diff-hi"]) == ("0.4", r"$-$0.2", "1.05")
    time = Verdict("a/ratio", "x", "y", "time", 1.02, 0.99, 1.0497, Outcome.EQUIVALENT, Kind.LAUNCHES, 1.05, "ratio",
                   "time", 4)
    assert verdict_values(time)["a/ratio-hi"] == "1.0497" and verdict_values(time)["a/ratio-lo"] == "0.99"


def test_a_macro_with_a_bare_percent_sign_is_refused_with_its_key(tmp_path):
    """'within 2 %' in a macro value made the rest of macros.tex a TeX comment: the build died of a runaway argument
    far from the cause. write_macros names the key instead; an escaped \\% passes."""
    from convbench.analysis.latex import LatexError, read_macros, write_macros
    with pytest.raises(LatexError, match="kernel/stack/fewer-weights"):
        write_macros({"kernel/stack/fewer-weights": "matched within 2 %"}, tmp_path / "m.tex")
    write_macros({"a/b": r"within 2\,\%"}, tmp_path / "m.tex")
    assert read_macros(tmp_path / "m.tex") == {"a/b": r"within 2\,\%"}
