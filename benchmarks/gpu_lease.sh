#!/usr/bin/env bash
# What this project measures on one NVIDIA GPU in one short lease (about nine minutes), PyTorch only:
#   1. the tests that need a GPU (the cudagraph engine's captured step trains as eager steps do);
#   2. the harness's blocked whole-step time (CUDA events) against torch.utils.benchmark.Timer, k5, batch 256;
#   3. the reference runs of config/paper-gpu.yaml (benchmarks/reference_gpu.py): the kernel study with TF32,
#      then every speed and layer study in fp32, which takes what time is left; a launch cut short by the
#      deadline leaves its finished cells in records/<group>.partial/launch-<i>/.
# Logs and a tarball of results/reference go to OUT. Where the machine's copy of the repository has no .git of its
# own (or a stale one), export CONVBENCH_GIT_COMMIT=<commit> first: the records name that commit.
#
#   bash benchmarks/gpu_lease.sh OUT [SECONDS]
set -u
out=${1:?usage: bash benchmarks/gpu_lease.sh OUT [SECONDS]}
budget=${2:-540}
mkdir -p "$out"
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
left() { echo $((budget - SECONDS)); }
# Fits a lease: three launches of shorter measurements; the sweeps without torch.compile (half a minute of
# compiling per cell and launch); the tf32 run without layer cells.
lease=(speed.launches=3 speed.min_seconds=0.2 speed.retries=1)
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to OUT/NAME.txt, say how it ended
    local name=$1 limit=$2
    shift 2
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    echo "$name: exit $? after $SECONDS s (limit $limit s)" | tee -a "$out/steps.txt"
}

{ nvidia-smi; python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())"
} >"$out/gpu.txt" 2>&1
step pytest 90 python3 -m pytest -q -p no:cacheprovider tests/test_cudagraph.py
step harness 100 python3 benchmarks/harness_overhead.py --config config/paper-gpu.yaml --arch k5 \
    --engine eager --engine torchscript --engine cudagraph --rounds 5 --min-seconds 0.5
step reference-tf32 80 python3 benchmarks/reference_gpu.py --frameworks torch --studies kernel --replace \
    --set "${lease[@]}" cuda.tf32=true speed.layers=false
[ "$(left)" -gt 60 ] || { echo "reference: skipped, $(left) s left" | tee -a "$out/steps.txt"; exit 0; }
step reference $(($(left) - 20)) python3 benchmarks/reference_gpu.py --frameworks torch --replace --set "${lease[@]}" \
    "studies.engines.engines.torch=[eager,torchscript]" "studies.overhead.engines.torch=[eager,cudagraph]" \
    "studies.size.engines.torch=[eager]"
tar czf "$out/reference.tar.gz" results/reference
echo "done after $SECONDS s" | tee -a "$out/steps.txt"
