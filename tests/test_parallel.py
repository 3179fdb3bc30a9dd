"""Several devices: real torchrun jobs of two gloo processes, and TensorFlow's MirroredStrategy over two
logical CPU devices (in a fresh process: logical devices must exist before TensorFlow initialises)."""
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convbench.backends import torch_backend
from convbench.parallel import bytes_model, launch, split
from convbench.parallel.cells import scaling_cell
from convbench.spec import ArchSpec, init_weights

pytestmark = pytest.mark.slow

LIMIT_S = 120  # no job of this file may run longer: a hang fails the test instead of stalling the suite

RELU = {"activation": "relu"}
MAXOUT2 = {"activation": "maxout", "pieces": 2}
# Two blocks, the second two convolutions deep: gathers inside a block and across a pool.
CASES = {f"{name}-k{k}": [{"width": 8, "kernel": k, **act}, {"width": 8, "kernel": k, "depth": 2, **act}]
         for name, act in (("relu", RELU), ("maxout2", MAXOUT2)) for k in (3, 5)}
BYTES_CASES = [(k, batch) for k in (3, 5) for batch in (4, 10)]


def spec_of(name: str, blocks) -> ArchSpec:
    return ArchSpec.from_dict(name, {"blocks": blocks}, 3, 10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, port: int | None = None, cwd=None) -> tuple[subprocess.CompletedProcess, float]:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
               "--master-port", str(port or free_port()), *map(str, args)]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=LIMIT_S, cwd=cwd)
    return done, time.perf_counter() - t0


def script(tmp_path, text: str):
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(text))
    return path


# --- PyTorch: gradients and bytes --------------------------------------------------------------

GRADIENTS_JOB = """
    import json, sys
    import numpy as np, torch, torch.distributed as dist
    from convbench.parallel import torch_parallel as tp
    from convbench.spec import ArchSpec, init_weights

    device = tp.init("cpu", timeout_s=30)
    torch.set_num_threads(1)
    cases, bytes_cases = json.loads(sys.argv[2]), json.loads(sys.argv[3])
    out = {}
    for name, blocks in cases.items():
        spec = ArchSpec.from_dict(name, {"blocks": blocks}, 3, 10)
        weights = init_weights(spec, 0)
        rng = np.random.default_rng(1)
        x, y = rng.normal(size=(6, 3, 12, 12)), rng.integers(0, 10, 6)
        for parallelism in ("data", "tensor"):
            for key, value in tp.gradients(spec, weights, x, y, parallelism).items():
                out[f"{name}/{parallelism}/{key}"] = value
        # The same without the 1/t correction: what the collectives' backward gives a replicated loss.
        trainer = tp.ParallelTrainer(spec, {k: v.astype(np.float64) for k, v in weights.items()}, "tensor", 0.0, 0.0,
                                     device, torch.float64)
        trainer.loss_scale = 1.0
        for key, value in trainer.gradients(torch.from_numpy(x), torch.from_numpy(y)).items():
            out[f"{name}/unscaled/{key}"] = value
    for k, batch in bytes_cases:  # the payload of one training step, as counted
        spec = ArchSpec.from_dict(f"k{k}", {"blocks": [{"width": 8, "kernel": k}, {"width": 8, "kernel": k,
                                  "depth": 2, "activation": "maxout", "pieces": 2}]}, 3, 10)
        x = torch.randn(batch, 3, 12, 12)
        y = torch.randint(0, 10, (batch,))
        for parallelism in ("data", "tensor"):
            trainer = tp.ParallelTrainer(spec, init_weights(spec, 0), parallelism, 0.1, 0.9, device)
            xs, ys = tp.local_batch(parallelism, x, y, dist.get_rank(), dist.get_world_size())
            trainer.step(xs, ys)  # DDP rebuilds its buckets after the first step
            trainer.log.clear()
            trainer.step(xs, ys)
            out[f"bytes/k{k}/b{batch}/{parallelism}"] = np.array(trainer.log.summary(2)["payload_bytes"])
    if dist.get_rank() == 0:
        np.savez(sys.argv[1], **out)
    dist.destroy_process_group()
"""


@pytest.fixture(scope="module")
def torch_job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gradients")
    done, seconds = torchrun(script(tmp, GRADIENTS_JOB), tmp / "out.npz", json.dumps(CASES), json.dumps(BYTES_CASES))
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(np.load(tmp / "out.npz"))


def reference_gradients(spec: ArchSpec):
    """One device, float64: the gradients of the same batch's mean loss."""
    model = torch_backend.build(spec, init_weights(spec, 0)).double()
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 3, 12, 12)), rng.integers(0, 10, 6)
    loss = F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    return {"loss": loss.detach().numpy(), **{name: p.grad.numpy() for name, p in model.named_parameters()}}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("parallelism", ["data", "tensor"])
def test_parallel_gradients_equal_one_device(torch_job, case, parallelism):
    reference = reference_gradients(spec_of(case, CASES[case]))
    for name, expected in reference.items():
        got = torch_job[f"{case}/{parallelism}/{name}"]
        assert got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5, err_msg=f"{parallelism} {name}")


TWO_NODE_CASES = ("relu-k5", "maxout2-k3")


@pytest.fixture(scope="module")
def two_node_job(tmp_path_factory):
    """Two "nodes" on 127.0.0.1: two torchrun agents (nnodes 2, one process each) meeting at a c10d rendezvous,
    started with the command convbench.parallel.launch gives each node of a multi-node job."""
    tmp = tmp_path_factory.mktemp("two-nodes")
    job = script(tmp, GRADIENTS_JOB)
    cases = json.dumps({k: CASES[k] for k in TWO_NODE_CASES})
    agent = [*launch.torchrun(2, nodes=2, endpoint=f"127.0.0.1:{free_port()}", rdzv_id="two-nodes"),
             job, tmp / "out.npz", cases, "[]"]
    agents = [subprocess.Popen(agent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [a.communicate(timeout=LIMIT_S)[0] for a in agents]
    assert [a.returncode for a in agents] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    return dict(np.load(tmp / "out.npz")), outputs


@pytest.mark.parametrize("case", TWO_NODE_CASES)
@pytest.mark.parametrize("parallelism", ["data", "tensor"])
def test_two_nodes_on_localhost_give_one_devices_gradients(two_node_job, case, parallelism):
    out, logs = two_node_job
    reference = reference_gradients(spec_of(case, CASES[case]))
    for name, expected in reference.items():
        np.testing.assert_allclose(out[f"{case}/{parallelism}/{name}"], expected, rtol=0, atol=1e-5, err_msg=name)


def test_collectives_backward_sums_a_replicated_loss_t_times(torch_job):
    """Why tensor parallel backpropagates loss / t: without it every gradient is t = 2 times too large."""
    case = "maxout2-k3"
    reference = reference_gradients(spec_of(case, CASES[case]))
    reference.pop("loss")
    for name, expected in reference.items():
        np.testing.assert_allclose(torch_job[f"{case}/unscaled/{name}"], 2 * expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kernel, batch", BYTES_CASES)
def test_counted_bytes_equal_the_closed_form_models(torch_job, kernel, batch):
    spec = ArchSpec.from_dict(f"k{kernel}", {"blocks": [{"width": 8, "kernel": kernel},
                                                        {"width": 8, "kernel": kernel, "depth": 2, **MAXOUT2}]}, 3, 10)
    assert torch_job[f"bytes/k{kernel}/b{batch}/data"] == bytes_model.data_parallel_bytes(spec, 2)["payload_bytes"]
    model = bytes_model.tensor_parallel_bytes(spec, 12, batch, 2)
    assert torch_job[f"bytes/k{kernel}/b{batch}/tensor"] == model["payload_bytes"]
    # by hand: maps after block 0's pool (8 x 6 x 6) and after block 1's first conv (4 x 6 x 6), logits 10;
    # each gathered forward and reduce-scattered backward, the logits all-reduced both ways
    assert model["payload_bytes"] == 4 * batch * (2 * (8 * 36 + 4 * 36) + 2 * 10)


# --- PyTorch: failures end the job quickly and visibly -------------------------------------------

FAILING_JOB = """
    import sys, time
    import torch, torch.distributed as dist
    from torch.distributed.elastic.multiprocessing.errors import record
    from convbench.parallel import torch_parallel as tp

    @record
    def main():
        tp.init("cpu", timeout_s=3)
        if dist.get_rank() == 1:
            if sys.argv[1] == "crash":
                raise RuntimeError("rank 1 crashed on purpose")
            time.sleep(600)  # hangs: rank 0's all-reduce must time out
        dist.all_reduce(torch.ones(3))

    main()
"""


@pytest.mark.parametrize("fault, message", [("crash", "rank 1 crashed on purpose"),
                                            ("hang", "Timed out waiting 3000ms")])
def test_a_failing_rank_ends_the_job_quickly_with_its_error(tmp_path, fault, message):
    done, seconds = torchrun(script(tmp_path, FAILING_JOB), fault)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr
    assert seconds < 40, f"the job took {seconds:.0f} s to fail"


def test_a_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done, seconds = torchrun("-m", "convbench.parallel.worker", "--cells-json", "[]", "--out", tmp_path,
                                 port=port)
    assert done.returncode != 0
    assert "EADDRINUSE" in done.stderr and str(port) in done.stderr
    assert seconds < 60


# --- PyTorch: the worker writes records ---------------------------------------------------------

def tiny(framework: str, parallelism: str, devices: int = 2, blocks=None, **settings):
    spec = spec_of("tiny", blocks or [{"width": 8}, {"width": 8, **MAXOUT2}])
    quick = dict(warmup=1, min_repeats=2, max_repeats=3, max_seconds=1.0)
    return scaling_cell(spec, framework=framework, devices=devices, parallelism=parallelism, batch_size=8,
                        image_size=8, **{**quick, **settings})


def test_the_worker_writes_a_record_per_cell_and_a_failed_one_for_a_bad_cell(tmp_path):
    cells = [tiny("torch", "data"), tiny("torch", "tensor", scaling="weak", straggler_ms=5),
             tiny("torch", "tensor", blocks=[{"width": 6, **MAXOUT2}]),  # 3 maps cannot split over 2 ranks
             tiny("torch", "hybrid")]
    (tmp_path / "cells.json").write_text(json.dumps([c.to_dict() for c in cells]))
    done, _ = torchrun("-m", "convbench.parallel.worker", "--cells-json", tmp_path / "cells.json",
                       "--out", tmp_path / "records")
    assert done.returncode == 0, done.stderr[-4000:]
    records = [json.loads((tmp_path / "records" / f"{c.id}.json").read_text()) for c in cells]
    assert [r["status"] for r in records] == ["ok", "ok", "failed", "failed"]
    assert "output maps divisible by 2; block 0 of tiny has 3" in records[2]["error"]
    assert "NotImplementedError: hybrid" in records[3]["error"]
    data, tensor = records[:2]
    for r in (data, tensor):
        assert {"schema_version", "cell_id", "cell", "counts", "timings", "communication", "process", "environment",
                "started", "wall_s", "status", "error"} <= set(r)
        assert r["cell"]["devices"] == 2 and r["environment"]["distributed"]["backend"] == "gloo"
        assert r["environment"]["versions"]["torch"].startswith("2.") and r["environment"]["git_commit"]
        for phase in ("forward", "backward", "optimizer", "total"):
            assert len(r["timings"]["phases"][phase]["samples"]) == 3
            assert len(r["timings"]["baseline"]["phases"][phase]["samples"]) == 3
        assert r["timings"]["step"]["median"] > 0 and r["timings"]["communication"]["median"] > 0
        assert len(r["timings"]["rank_step_medians"]) == 2 and r["timings"]["efficiency"] > 0
        assert r["communication"]["payload_matches_model"]
        assert r["counts"]["threads_per_rank"] == 1
    assert data["counts"]["global_batch"] == 8 and data["counts"]["local_batch"] == 4
    # the host's loopback counter: the ring all-reduce's bytes and the TCP/IP headers (other local traffic only adds)
    assert data["communication"]["loopback_bytes_per_step"] >= data["communication"]["loopback_model_bytes_per_step"]
    assert tensor["counts"]["global_batch"] == 16 and tensor["counts"]["local_batch"] == 16  # weak scaling
    assert "-tensor-weak-lag5ms_" in tensor["cell_id"]
    assert [c["op"] for c in tensor["communication"]["measured"]["calls"]] == [
        "all_gather", "all_reduce", "all_reduce", "reduce_scatter"]
    # the straggler's 5 ms sleep holds every step back
    assert tensor["timings"]["step"]["median"] > 0.005


# --- TensorFlow -------------------------------------------------------------------------------

TF_JOB = """
    import json, sys
    import numpy as np
    from convbench.parallel import tf_parallel
    devices = tf_parallel.configure(2, threads=2)
    import keras, tensorflow as tf
    keras.config.set_floatx("float64")
    from convbench.backends import tf_backend
    from convbench.spec import ArchSpec, init_weights

    out = {}
    for name, blocks in json.loads(sys.argv[2]).items():
        spec = ArchSpec.from_dict(name, {"blocks": blocks}, 3, 10)
        weights = init_weights(spec, 0)
        rng = np.random.default_rng(1)
        x, y = rng.normal(size=(6, 3, 12, 12)), rng.integers(0, 10, 6)
        with tf.device("/CPU:0"):  # one device
            model = tf_backend.build(spec, {k: v.astype("float64") for k, v in weights.items()})
            variables = tf_backend._named_variables(model)
            with tf.GradientTape() as tape:
                logits = model(tf.constant(x.transpose(0, 2, 3, 1)))
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            grads = tape.gradient(loss, list(variables.values()))
            optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
            optimizer.apply_gradients(zip(grads, variables.values()))
        for key, g in zip(variables, grads):
            out[f"{name}/one/grad/{key}"] = tf_backend._from_tf(g.numpy())
        for key, value in tf_backend.export_weights(model).items():
            out[f"{name}/one/step/{key}"] = value
        trainers = {"mirrored": tf_parallel.MirroredTrainer, "tensor": tf_parallel.TensorParallelTrainer}
        for scheme, trainer_class in trainers.items():
            trainer = trainer_class(spec, weights, 0.1, 0.9, devices, 6, "float64")
            inputs = trainer.distribute(x, y)
            for key, value in trainer.gradients(inputs).items():
                out[f"{name}/{scheme}/grad/{key}"] = value
            trainer.step(inputs)
            for key, value in trainer.weights().items():
                out[f"{name}/{scheme}/step/{key}"] = value
            if scheme == "mirrored":
                out[f"{name}/payload"] = np.array(trainer.traced_payload_bytes)
            else:
                out[f"{name}/tensor-payload"] = np.array(trainer.payload_bytes())
    try:
        tf_parallel.dtensor_probe(devices)
    except Exception as error:
        out["dtensor_error"] = np.array(str(error))
    np.savez(sys.argv[1], **out)
"""


@pytest.fixture(scope="module")
def tf_job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tf")
    cases = {k: v for k, v in CASES.items() if k in ("relu-k5", "maxout2-k3")}
    done = subprocess.run([sys.executable, script(tmp, TF_JOB), tmp / "out.npz", json.dumps(cases)],
                          capture_output=True, text=True, timeout=LIMIT_S)
    assert done.returncode == 0, done.stderr[-4000:]
    return cases, dict(np.load(tmp / "out.npz"))


@pytest.mark.parametrize("scheme", ["mirrored", "tensor"])
def test_tf_gradients_and_one_step_equal_one_device(tf_job, scheme):
    """Data parallel (MirroredStrategy) and the hand-built tensor parallel, float64, against one device."""
    cases, out = tf_job
    for case in cases:
        names = [k.split("/", 3)[3] for k in out if k.startswith(f"{case}/one/grad/")]
        assert len(names) == 2 * 3 + 2
        for what in ("grad", "step"):
            for name in names:
                np.testing.assert_allclose(out[f"{case}/{scheme}/{what}/{name}"], out[f"{case}/one/{what}/{name}"],
                                           rtol=0, atol=1e-12, err_msg=f"{case} {what} {name}")
        # float64: 8 bytes a parameter, or an activation
        spec = spec_of(case, cases[case])
        assert out[f"{case}/payload"] == bytes_model.data_parallel_bytes(spec, 2, 8)["payload_bytes"]
        assert out[f"{case}/tensor-payload"] == bytes_model.tensor_parallel_bytes(spec, 12, 6, 2, 8)["payload_bytes"]


def test_dtensor_cannot_shard_convolution_filters_so_tensor_parallel_is_by_hand(tf_job):
    _, out = tf_job
    assert "Filter for convolution must have fully replicated layout" in str(out["dtensor_error"])


TF_WORKER_JOB = """
    import json, sys
    import numpy as np
    from convbench.parallel import tf_parallel
    tf_parallel.configure(1, threads=1)
    import keras, tensorflow as tf
    keras.config.set_floatx("float64")
    from convbench.spec import ArchSpec, init_weights

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # the cluster: TF_CONFIG
    devices = list(strategy.extended.worker_devices)
    out = {"replicas": np.array(strategy.num_replicas_in_sync)}
    for name, blocks in json.loads(sys.argv[2]).items():
        spec = ArchSpec.from_dict(name, {"blocks": blocks}, 3, 10)
        weights = init_weights(spec, 0)
        rng = np.random.default_rng(1)
        x, y = rng.normal(size=(6, 3, 12, 12)), rng.integers(0, 10, 6)
        mirrored = tf_parallel.MirroredTrainer(spec, weights, 0.1, 0.9, devices, 6, "float64", strategy=strategy)
        for key, value in mirrored.gradients(mirrored.distribute(x, y)).items():
            out[f"{name}/mirrored/grad/{key}"] = value
        tensor = tf_parallel.TensorParallelTrainer(spec, weights, 0.1, 0.9, devices, 6, "float64", strategy=strategy)
        _, parts = tensor.gradient_parts(tensor.distribute(x, y))
        for replica, part in parts.items():
            for key, value in part.items():
                out[f"{name}/tensor/{replica}/{key}"] = value
    np.savez(sys.argv[1], **out)
"""


@pytest.fixture(scope="module")
def tf_two_workers(tmp_path_factory, tf_job):
    """Two "nodes" on 127.0.0.1: two processes under MultiWorkerMirroredStrategy, their cluster in TF_CONFIG
    as convbench.parallel.launch writes it for each node of a multi-node job."""
    tmp = tmp_path_factory.mktemp("tf-workers")
    cases, _ = tf_job
    job, port = script(tmp, TF_WORKER_JOB), free_port()
    workers = [subprocess.Popen([sys.executable, job, tmp / f"out{i}.npz", json.dumps(cases)],
                                env={**os.environ, "TF_CONFIG": launch.tf_config(["127.0.0.1"] * 2, i, port)},
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [w.communicate(timeout=LIMIT_S)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    return [dict(np.load(tmp / f"out{i}.npz")) for i in range(2)]


def test_two_tf_workers_on_localhost_give_one_devices_gradients(tf_job, tf_two_workers):
    cases, one = tf_job
    assert [int(w["replicas"]) for w in tf_two_workers] == [2, 2]
    for case in cases:
        spec = spec_of(case, cases[case])
        names = [k.split("/", 3)[3] for k in one if k.startswith(f"{case}/one/grad/")]
        parts = {}
        for worker in tf_two_workers:  # each worker holds its own replica's slices
            for key, value in worker.items():
                if key.startswith(f"{case}/tensor/"):
                    _, _, replica, name = key.split("/", 3)
                    parts.setdefault(int(replica), {})[name] = value
        assert sorted(parts) == [0, 1]
        tensor = split.assemble(spec, parts, 2)
        for name in names:
            expected = one[f"{case}/one/grad/{name}"]
            for worker in tf_two_workers:  # data parallel: every worker has the all-reduced gradients
                np.testing.assert_allclose(worker[f"{case}/mirrored/grad/{name}"], expected, rtol=0, atol=1e-12)
            np.testing.assert_allclose(tensor[name], expected, rtol=0, atol=1e-12, err_msg=f"{case} tensor {name}")


def test_the_tf_worker_writes_records(tmp_path):
    cells = [tiny("tensorflow", "none", devices=1), tiny("tensorflow", "data"), tiny("tensorflow", "tensor")]
    done = subprocess.run([sys.executable, "-m", "convbench.parallel.tf_worker", "--cells-json",
                           json.dumps([c.to_dict() for c in cells]), "--out", tmp_path],
                          capture_output=True, text=True, timeout=LIMIT_S)
    assert done.returncode == 0, done.stderr[-4000:]
    none, data, tensor = (json.loads((tmp_path / f"{c.id}.json").read_text()) for c in cells)
    assert none["status"] == data["status"] == tensor["status"] == "ok", tensor["error"]
    for r in (data, tensor):
        assert r["communication"]["payload_matches_model"] and r["timings"]["communication"]["median"] > 0
        assert r["timings"]["efficiency"] > 0 and len(r["timings"]["baseline"]["step"]["samples"]) >= 2
    assert tensor["counts"]["local_batch"] == tensor["counts"]["global_batch"] == 8
    assert data["timings"]["phase_method"] == "derived" and data["environment"]["distributed"]["devices"] == [
        "/CPU:0", "/CPU:1"]
    for phase in ("forward", "backward", "optimizer", "total"):
        assert len(data["timings"]["phases"][phase]["samples"]) >= 2


def test_a_scaling_group_runs_in_separate_launches_merged_into_one_record(tmp_path):
    """scaling.launches: the group's launcher (torchrun) runs once per launch; each cell's record then holds every
    launch's summary, its step's launch medians, and the communication merged like a phase."""
    from convbench.run import run_group

    cells = [tiny("torch", "data", launches=2), tiny("torch", "tensor", launches=2)]
    run_group(cells, tmp_path / "records", log=lambda _: None)
    for cell in cells:
        record = json.loads((tmp_path / "records" / f"{cell.id}.json").read_text())
        assert record["status"] == "ok", record.get("error")
        timings = record["timings"]
        assert [x["launch"] for x in timings["launches"]] == [1, 2]
        assert len(timings["step"]["launch_medians"]) == 2 and len(timings["step"]["samples"]) == 6
        assert len(timings["communication"]["launch_medians"]) == 2
        assert timings["efficiency"] == pytest.approx(np.median([x["efficiency"] for x in timings["launches"]]))
    assert not (tmp_path / "records.partial").exists()
