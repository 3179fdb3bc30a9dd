"""Compile the paper with latexmk from paper/ plus the generated files; never forced (-f)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


class LatexError(RuntimeError):
    """The LaTeX build failed; the message ends with the tail of its log."""


def build_pdf(generated_dir, pdf_path, paper_dir="paper", timeout: float = 300) -> Path:
    """latexmk main.tex with TEXINPUTS/BIBINPUTS = paper_dir and generated_dir; the build lives beside pdf_path."""
    paper, generated, pdf = Path(paper_dir).resolve(), Path(generated_dir).resolve(), Path(pdf_path).resolve()
    build = pdf.parent / "latex"
    build.mkdir(parents=True, exist_ok=True)
    search = f"{paper}{os.pathsep}{generated}{os.pathsep}"  # the trailing separator keeps TeX's own paths
    env = {**os.environ, "TEXINPUTS": search, "BIBINPUTS": search}
    # -g: build even where latexmk thinks the PDF is current; the same build dir may have seen other generated files.
    command = ["latexmk", "-pdf", "-g", "-halt-on-error", "-interaction=nonstopmode", "-file-line-error",
               f"-outdir={build}", "main.tex"]
    try:
        result = subprocess.run(command, cwd=paper, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise LatexError(f"latexmk timed out after {timeout} s in {build}") from e
    log = build / "main.log"
    if result.returncode != 0 or not (build / "main.pdf").exists():
        text = log.read_text(errors="replace") if log.exists() else result.stdout + result.stderr
        tail = "\n".join(text.splitlines()[-40:])
        raise LatexError(f"latexmk failed (exit {result.returncode}); see {log}. Log tail:\n{tail}")
    pdf.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(build / "main.pdf", pdf)
    return pdf
