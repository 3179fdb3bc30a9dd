"""How a scaling job starts its processes, on one node or across several (framework-free).

One node (scaling.nodes 1): PyTorch runs `torchrun --standalone` with one process per device;
TensorFlow one process holding every device (MirroredStrategy).

Several nodes: the job is a Slurm allocation of N nodes, and `srun` starts one launcher per node:
- PyTorch: torchrun agents that meet at a c10d rendezvous on the job's first node
  (--nnodes N --rdzv-backend c10d --rdzv-endpoint <first node>:RDZV_PORT --rdzv-id <job id>), each
  starting devices/N processes; gloo or nccl then connect every rank.
- TensorFlow: one convbench.parallel.tf_worker per node under MultiWorkerMirroredStrategy, which
  reads its cluster from TF_CONFIG: tf_config() writes it from Slurm's variables. (tf.distribute's
  SlurmClusterResolver would too, but it gives every node's first task the same port, which two
  "nodes" on one host, as in tests/test_slurm.py, cannot share.)
Node addresses come from Slurm (scontrol show node: NodeAddr), which on a cluster is the host name.
"""
import json
import os
import subprocess
import sys

RDZV_PORT = 29400  # torchrun's default for a c10d rendezvous
TF_PORT = 28800  # TensorFlow worker i of a job listens on TF_PORT + i


def nodes_of(cells) -> int:
    counts = {c.settings.get("nodes", 1) for c in cells}
    if len(counts) != 1:
        raise ValueError(f"one scaling job spans one number of nodes, got {sorted(counts)}")
    return counts.pop()


def torchrun(devices: int, nodes: int = 1, endpoint: str | None = None, rdzv_id: str = "convbench") -> list[str]:
    """The torchrun command one node runs: standalone on one node, else an agent of a c10d rendezvous
    at endpoint (host:port) starting devices/nodes processes."""
    run = [sys.executable, "-m", "torch.distributed.run"]
    if nodes == 1:
        return [*run, "--standalone", f"--nproc-per-node={devices}"]
    return [*run, f"--nnodes={nodes}", f"--nproc-per-node={devices // nodes}", "--rdzv-backend=c10d",
            f"--rdzv-endpoint={endpoint}", f"--rdzv-id={rdzv_id}"]


def _scontrol(*args: str) -> str:
    return subprocess.run(["scontrol", *args], capture_output=True, text=True, check=True).stdout


def slurm_addresses(nodelist: str) -> list[str]:
    """The addresses of a Slurm node list's nodes, in order (NodeAddr: the host name unless set)."""
    names = _scontrol("show", "hostnames", nodelist).split()
    fields = [dict(f.split("=", 1) for f in line.split() if "=" in f)
              for line in _scontrol("-o", "show", "node", ",".join(names)).splitlines()]
    address = {f["NodeName"]: f.get("NodeAddr", f["NodeName"]) for f in fields}
    return [address[name] for name in names]


def _allocation(nodes: int) -> str:
    """The job's node list; a multi-node job must run inside a Slurm allocation of that many nodes."""
    if "SLURM_JOB_NODELIST" not in os.environ:
        raise RuntimeError(f"scaling.nodes: a job over {nodes} nodes runs inside a Slurm allocation of {nodes} nodes "
                           "(srun starts one launcher per node); SLURM_JOB_NODELIST is not set")
    return os.environ["SLURM_JOB_NODELIST"]


def command(framework: str, devices: int, nodes: int) -> list[str]:
    """The whole command a scaling job runs (before --cells-json and --out)."""
    if nodes == 1:
        if framework == "torch":
            return [*torchrun(devices), "-m", "convbench.parallel.worker"]
        return [sys.executable, "-m", "convbench.parallel.tf_worker"]
    first = slurm_addresses(_allocation(nodes))[0]
    # --overlap: the rule's command may itself run in a step (the Slurm executor wraps it in srun)
    srun = ["srun", "--overlap", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    if framework == "torch":
        job = os.environ.get("SLURM_JOB_ID", "convbench")
        return [*srun, *torchrun(devices, nodes, f"{first}:{RDZV_PORT}", job), "-m", "convbench.parallel.worker"]
    return [*srun, sys.executable, "-m", "convbench.parallel.tf_worker", "--multi-worker"]


def tf_config(addresses: list[str], index: int, port: int = TF_PORT) -> str:
    """TF_CONFIG for worker `index` of workers at `addresses` (one per node), worker i on port + i."""
    workers = [f"{address}:{port + i}" for i, address in enumerate(addresses)]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def tf_config_from_slurm() -> str:
    """TF_CONFIG for this srun task: one worker per task, task i on the step's i-th node."""
    return tf_config(slurm_addresses(os.environ["SLURM_STEP_NODELIST"]), int(os.environ["SLURM_PROCID"]))
