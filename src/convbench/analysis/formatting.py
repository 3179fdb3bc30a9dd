"""Numbers and names as the paper prints them: one copy of every formatter.

Verdict words are chosen from numbers as printed (`printed`, `compare`), so that a word never contradicts the digits
beside it.
"""
from __future__ import annotations

import math

import pandas as pd

from convbench.analysis.stats import Kind, Outcome
from convbench.cells import ENGINES, FRAMEWORKS
from convbench.spec import ArchSpec

LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine"}
X = r"$\times$"  # for f-strings, whose expressions cannot hold a backslash (Python 3.11)

# Display names only; any framework not listed shows under its own name.
FRAMEWORK_NAMES = {"torch": "PyTorch", "tensorflow": "TensorFlow", "keras": "Keras", "jax": "JAX"}
# Tables list setups in this order: frameworks, then each framework's engines; others follow alphabetically.
FRAMEWORK_ORDER = list(FRAMEWORKS)
ENGINE_ORDER = list(dict.fromkeys(e for engines in ENGINES.values() for e in engines))  # eager first, then each's


# ---- text -------------------------------------------------------------------------------------------

def escape(text) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def tt(text, hyphens: bool = False) -> str:
    """Typewriter text. OT1's \\_ is a drawn rule that PDF text extraction loses; cmtt has a real underscore glyph
    (slot 95), and a line may break after it. hyphens: a line may break after each hyphen too (cmtt never
    hyphenates, so a long name at the start of a sentence otherwise stretches the line before it)."""
    out = rf"\texttt{{{escape(text)}}}".replace(r"\_", r"\char95\allowbreak{}")
    return out.replace("-", r"-\allowbreak{}") if hyphens else out


def plain(text) -> str:
    """Quoted text (an error line) for running prose: LaTeX specials escaped, < and > as text symbols."""
    return escape(text).replace("<", r"\textless{}").replace(">", r"\textgreater{}")


def words(items) -> str:
    """'a', 'a and b', 'a, b and c'; '' for nothing."""
    items = list(items)
    return " and ".join(items) if len(items) <= 2 else ", ".join(items[:-1]) + " and " + items[-1]


def tally(outcomes, labels: dict) -> str:
    """How a family of comparisons came out: 'higher in 1 and undecided in 3', each outcome that occurred with its
    count (labels: Outcome -> the words before 'in', in the order to print), 'none' for no comparison. Outcomes that
    did not occur are left out: 'higher in 0, lower in 0 and undecided in 2' reads as a seam."""
    outcomes = list(outcomes)
    return counted((label, sum(o is outcome for o in outcomes)) for outcome, label in labels.items())


def tally_of(outcomes, labels: dict, noun: str = "comparison") -> str:
    """tally with its total: 'higher in 1 and undecided in 3 of 4 comparisons', 'undecided in all 4 comparisons',
    'undecided in its one comparison' (never '1 of 1'); '--' for none."""
    outcomes = list(outcomes)
    if not outcomes:
        return "--"
    if len(set(map(id, outcomes))) == 1:
        label = labels[outcomes[0]]
        return f"{label} in its one {noun}" if len(outcomes) == 1 else f"{label} in all {len(outcomes)} {noun}s"
    return f"{tally(outcomes, labels)} of {len(outcomes)} {noun}s"


def counted(parts) -> str:
    """'with data parallel in 2 and with neither in 1': each (label, count) whose count is not zero; 'none'."""
    return words(f"{label} in {n}" for label, n in parts if n) or "none"


def count_words(n: int, noun: str) -> str:
    return f"{NUMBER_WORDS.get(n, n)} {noun}{'' if n == 1 else 's'}"


def seeds_phrase(counts) -> str:
    """'one seed', 'three seeds' or '1--3 seeds' (the fewest and the most any network had); '0 seeds' for none."""
    counts = [int(n) for n in counts if pd.notna(n)] or [0]
    lo, hi = min(counts), max(counts)
    return count_words(hi, "seed") if lo == hi else f"{lo}--{hi} seeds"


def share_words(k: int, n: int, noun: str) -> str:
    """k of n things without a zero or a one-of-one seam: 'none of the 3 cells', 'no cell' (of one), 'the one cell',
    'all 3 cells', '2 of the 3 cells'."""
    plural = f"{noun}{'' if n == 1 else 's'}"
    if n == 1:
        return f"the one {noun}" if k else f"no {noun}"
    return f"none of the {n} {plural}" if k == 0 else f"all {n} {plural}" if k == n else f"{k} of the {n} {plural}"


def last_line(text) -> str | None:
    lines = [line.strip() for line in str(text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else None


def framework_name(framework: str) -> str:
    return FRAMEWORK_NAMES.get(framework, framework)


def setup_label(framework: str, engine: str) -> str:
    return f"{framework_name(framework)} {engine}"


def setup_rank(setup: str) -> tuple:
    framework, _, engine = setup.partition("-")
    rank = lambda order, x: (order.index(x), "") if x in order else (len(order), x)  # noqa: E731
    return (*rank(FRAMEWORK_ORDER, framework), *rank(ENGINE_ORDER, engine))


def describe(arch: dict) -> str:
    """Short text for an architecture, e.g. '2x 3x3/32 relu, 3x3/64 relu'."""
    parts = []
    for b in ArchSpec.from_record(arch).blocks:
        act = f"{b.activation}{b.pieces}" if b.pieces > 1 else b.activation
        stack = f"{b.depth}x " if b.depth > 1 else ""
        parts.append(f"{stack}{b.kernel}x{b.kernel}/{b.width} {act}")
    return ", ".join(parts)


# ---- numbers ----------------------------------------------------------------------------------------

def decimals(x: float) -> int:
    """Decimals that show three significant digits (none past the point for 100 and above)."""
    return max(0, 2 - math.floor(math.log10(abs(x)))) if x else 0


def sig3(x: float) -> str:
    return f"{x:.{decimals(x)}f}"


def signed(text: str) -> str:
    """A printed number with a minus sign, not a hyphen; anything else ('--' for none) as it is."""
    return "$-$" + text[1:] if text.startswith("-") and text[1:2].isdigit() else text


def ms(median_s: float, iqr_s: float | None = None) -> str:
    """A time in seconds shown in milliseconds as 'median (IQR)', both to the median's precision; '--' for none."""
    if median_s is None or pd.isna(median_s):
        return "--"
    value = median_s * 1e3
    if iqr_s is None or pd.isna(iqr_s):
        return sig3(value)
    return f"{sig3(value)} ({iqr_s * 1e3:.{decimals(value)}f})"


def seconds(x: float, space: str = r"\,") -> str:
    """A duration with its unit: milliseconds below one second."""
    return f"{sig3(x)}{space}s" if abs(x) >= 1 else f"{sig3(x * 1e3)}{space}ms"


def thousands(n) -> str:
    return f"{int(n):,}" if pd.notna(n) else "--"


def ratio(x: float) -> str:
    return f"{x:.2f}"


def times(x: float) -> str:
    return f"{ratio(x)}{X}"


def percent(fraction: float) -> str:
    """A fraction in percent (or a difference in points), one decimal; a difference that rounds to zero has no sign."""
    text = f"{100 * fraction:.1f}"
    return "0.0" if text == "-0.0" else text


def beside(x: float, edges, decimals: int = 2, scale: float = 1) -> str:
    """scale * x with `decimals` decimals, or up to three more where it would print equal to an edge of the margin
    (edges, unscaled) that it does not equal: an interval's end at the margin then shows on which side it lies
    (1.05 against a margin of 1.05 prints 1.049 or 1.051)."""
    for d in range(decimals, decimals + 4):
        text = f"{scale * x:.{d}f}"
        if all(x == e or text != f"{scale * e:.{d}f}" for e in edges):
            break
    return text


def printed(fraction) -> float:
    """A fraction as the percentage the text prints: verdicts compare these, so words never contradict digits."""
    return float(percent(fraction))


def pm(mean: float, ci: float) -> str:
    """Percent (or points) as 'mean +- half-width'; the mean alone without an interval; '--' without a mean."""
    if mean is None or pd.isna(mean):
        return "--"
    text = signed(percent(mean))
    return text if ci is None or pd.isna(ci) else f"{text}\\,$\\pm$\\,{percent(ci)}"


def sci(x: float) -> str:
    """A small positive number as LaTeX, e.g. $3.8\\times10^{-6}$; 0 as 0."""
    if pd.isna(x):
        return "--"
    if x == 0:
        return "0"
    exponent = math.floor(math.log10(abs(x)))
    mantissa = x / 10 ** exponent
    if round(mantissa, 1) >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"${mantissa:.1f}\\times10^{{{exponent}}}$"


def span(values, fmt=ratio, unit: str = "") -> str:
    """'1.20' or '1.20--1.80' (min--max), with a unit after; 'from $-$0.50 to 1.80' where a bound is negative."""
    values = [v for v in values if pd.notna(v) and math.isfinite(v)]
    if not values:
        return "--"
    lo, hi = fmt(min(values)), fmt(max(values))
    if lo == hi:
        return f"{signed(lo)}{unit}"
    return f"from {signed(lo)} to {signed(hi)}{unit}" if lo.startswith("-") else f"{lo}--{hi}{unit}"


def bracketed(x: float, lo: float, hi: float, digits: int = 2) -> str:
    """'0.85 [0.66, 1.10]': an estimate and its interval to `digits` decimals, more where the ends would otherwise
    print equal ('0.152 [0.148, 0.155]', not '0.15 [0.15, 0.15]'); the number alone where the ends are equal."""
    if lo == hi:
        return signed(f"{x:.{digits}f}")
    d = digits
    while d < 6 and f"{lo:.{d}f}" == f"{hi:.{d}f}":
        d += 1
    return f"{signed(f'{x:.{d}f}')} [{signed(f'{lo:.{d}f}')}, {signed(f'{hi:.{d}f}')}]"


def compare(word_if_more: str, word_if_less: str, a: str, b: str, same: str) -> str:
    """Direction word from two numbers as printed, so that the word never contradicts the digits."""
    return same if float(a) == float(b) else (word_if_more if float(a) > float(b) else word_if_less)


# ---- verdicts: the one table of words ----------------------------------------------------------------

# (scale, outcome) -> the phrase between subject and reference; the several-times claim's AT_LEAST has a word per side.
WORDS = {
    ("time", Outcome.FASTER): "faster than", ("time", Outcome.SLOWER): "slower than",
    ("time", Outcome.EQUIVALENT): "as fast as (within the margin)", ("time", Outcome.UNDECIDED): "undecided against",
    ("accuracy", Outcome.HIGHER): "higher than", ("accuracy", Outcome.LOWER): "lower than",
    ("accuracy", Outcome.EQUIVALENT): "equivalent to (within the margin)",
    ("accuracy", Outcome.UNDECIDED): "undecided against",
    ("gap", Outcome.HIGHER): "a larger gap than", ("gap", Outcome.LOWER): "a smaller gap than",
    ("gap", Outcome.EQUIVALENT): "a gap equivalent to (within the margin)", ("gap", Outcome.UNDECIDED): "undecided against",
    ("overfit", Outcome.HIGHER): "overfit more", ("overfit", Outcome.LOWER): "overfit less",
    ("overfit", Outcome.EQUIVALENT): "overfit equivalently (within the margin)",
    ("overfit", Outcome.UNDECIDED): "undecided",
    ("size", Outcome.HIGHER): "a size the grid ranks above its best",
    ("size", Outcome.LOWER): "a size the grid ranks below its best",
    ("size", Outcome.EQUIVALENT): "a size equivalent to the grid's best (within the margin)",
    ("size", Outcome.UNDECIDED): "a size the grid cannot tell from its best",
    ("several", Outcome.LESS_THAN): "less than several times apart from",
    ("several", Outcome.UNDECIDED): "undecided against",
}
SEVERAL_WORDS = {True: "several times slower than", False: "several times faster than"}  # AT_LEAST, by side
# outcomes counted over several comparisons ("faster on 3, undecided on 2 of 5 networks")
SHORT = {Outcome.FASTER: "faster", Outcome.SLOWER: "slower", Outcome.HIGHER: "higher", Outcome.LOWER: "lower",
         Outcome.EQUIVALENT: "equivalent", Outcome.UNDECIDED: "undecided", Outcome.AT_LEAST: "several times apart",
         Outcome.LESS_THAN: "less than several times apart"}

# How each kind of interval is named in the paper (captions, headers and sentences take it from the verdict shown).
KIND_PHRASES = {
    Kind.LAUNCHES: "$t$ interval over the launch medians, paired by launch",
    Kind.SEEDS: "paired $t$ interval over seeds, Holm-corrected",
    Kind.WELCH: "Welch $t$ interval over the launch medians",
    Kind.BOOTSTRAP: "percentile bootstrap interval of one launch's samples",
    Kind.QUARTILES: "range from the quartiles",
    Kind.PREDICTION: "$t$ prediction interval of one new seed",
    Kind.SPREAD: "range over the comparisons",
    Kind.NONE: "no interval",
}


# What a time ratio's estimate is, by the kind of its interval (stats.launch_ratio, unpaired_ratio, bootstrap_ratio).
ESTIMATE_PHRASES = {
    Kind.LAUNCHES: "geometric mean of the per-launch ratios of medians",
    Kind.WELCH: "ratio of the geometric means of the launch medians",
    Kind.BOOTSTRAP: "ratio of the medians",
}


def estimate_phrase(kinds) -> str:
    """What the ratios a caption shows are, named from the kinds of their intervals ('and' where they differ)."""
    return words(ESTIMATE_PHRASES.get(Kind(k), "ratio") for k in dict.fromkeys(k for k in kinds if k is not None)) \
        or "ratio of the medians"


def verdict_word(v) -> str:
    """The phrase a Verdict's outcome allows (its fact where it has no interval): WORDS, rendered at render time."""
    if v.outcome is Outcome.NONE:
        return v.fact or "--"
    if v.outcome is Outcome.AT_LEAST:
        return SEVERAL_WORDS[v.estimate > 1]
    return WORDS[(v.scale, v.outcome)]


def kind_phrase(kinds) -> str:
    """The interval kinds of the verdicts a caption or sentence shows, named as the paper names them ('and')."""
    return words(KIND_PHRASES[Kind(k)] for k in dict.fromkeys(kinds)) or KIND_PHRASES[Kind.NONE]


def margin_text(margins, scales=("time", "accuracy")) -> str:
    """The margins as the paper states them: time ratios within [1/1.05, 1.05], accuracy within 1 point; scales
    names the ones a table uses (a table of time ratios alone states only theirs)."""
    parts = {"time": rf"{100 * margins.time:g}\,\% for time ratios",
             "accuracy": f"{100 * margins.accuracy:g} point for accuracy"}
    return ", ".join(parts[s] for s in scales)


def detectable_values(prefix: str, verdicts) -> dict[str, str]:
    """The minimum detectable effect of paired differences (Verdict.detectable) for the text, in points:
    '<prefix>/detectable' its range over the verdicts, '-seeds' their seed counts, '-any' whether there is one."""
    found = [v for v in verdicts if math.isfinite(v.lo) and math.isfinite(v.hi)]
    return {f"{prefix}/detectable": span([v.detectable for v in found], percent),
            f"{prefix}/detectable-seeds": words(sorted({str(v.n) for v in found}, key=int)) or "--",
            f"{prefix}/detectable-any": flag(found)}


def flag(condition) -> str:
    """A flag macro's value for \\ifcb{key}{then}{else} in the paper: '1' where the condition holds, else '0'."""
    return "1" if condition else "0"


# a derived phase (a difference of two timed programs) that tidy.resolve could not tell from zero, in every table
NOT_RESOLVED_MARK = r"--$^\ddagger$"
NOT_RESOLVED_NOTE = (r"$^\ddagger$\,Not resolved: a derived phase (a difference of two timed programs) that the data "
                     r"cannot tell apart from zero (a sample at or below zero, or an interval over the launches that "
                     r"reaches zero); no time is reported for it.")
