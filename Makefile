# Two commands on a fresh Debian/Ubuntu machine:
#   make paper   set up everything, run the default pipeline, write results/default/paper.pdf
#   make test    set up everything (Slurm and munge too, for the cluster tests), run the test suite
#   make report  after make paper: Snakemake's HTML report of the run, results/<run>/report.html
#   make paper-full  the full-scale paper (config/paper.yaml) from its committed records, results/paper/paper.pdf
PYTHON ?= python3
VENV ?= .venv
CORES ?= all
BIN := $(abspath $(VENV))/bin
# The rules call `python`: the environment's own.
export PATH := $(BIN):$(PATH)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBIAN_PACKAGES := latexmk texlive-latex-base texlive-latex-recommended texlive-fonts-recommended \
	texlive-science poppler-utils

RUN = $(shell sed -n 's/^run: *\([^ #]*\).*/\1/p' config/config.yaml)

FULL := results/reference/cpu-paper

.PHONY: paper paper-full test report lint system slurm clean

paper: $(VENV)/.installed system
	snakemake --cores $(CORES)
	@echo "The paper: results/$(RUN)/paper.pdf"

# The committed records of config/paper.yaml's run go where that run writes them (never over a record already there),
# so that Snakemake runs only the jobs whose records are missing, then the analysis and the PDF.
paper-full: $(VENV)/.installed system
	mkdir -p results/paper/records
	cp -Rn $(FULL)/records/. results/paper/records/
	snakemake --cores $(CORES) --configfile config/paper.yaml
	@echo "The paper: results/paper/paper.pdf"

test: $(VENV)/.installed system slurm
	python -m pytest

report: $(VENV)/.installed
	snakemake --report results/$(RUN)/report.html

lint: $(VENV)/.installed
	snakemake --lint

# TeX Live and poppler from the distribution, only when something is missing.
system:
	@command -v latexmk >/dev/null && command -v pdftotext >/dev/null && kpsewhich siunitx.sty >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES); }

# Slurm and munge for tests/test_slurm.py's one-node cluster (they live in /usr/sbin), only when missing.
slurm:
	@PATH="$$PATH:/usr/sbin:/sbin"; for tool in slurmctld slurmd munged mungekey sbatch srun squeue; do \
		command -v $$tool >/dev/null || missing=1; done; \
	[ -z "$$missing" ] || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends slurm-wlm munge; }

$(VENV)/.installed: pyproject.toml envs/constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c envs/constraints-cpu.txt -e '.[cpu,test]'
	touch $@

clean:  # keeps committed reference runs
	find results -mindepth 1 -maxdepth 1 ! -name reference -exec rm -rf {} +
	rm -rf .snakemake
