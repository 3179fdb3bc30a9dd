"""PyTorch: build a spec, load neutral weights, and expose the phases of a training step."""
from __future__ import annotations

import platform
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convbench import cells, learned
from convbench.backends.torch_learned import L0Gate, MaskedConv2d
from convbench.spec import ArchSpec, Block

NAME = "torch"
LAYOUT = "NCHW"
# convbench.cells.ENGINES says what each is. torchscript took over Caffe2's production role; autograd writes every
# backward; cudagraph's capture is GraphSteps.
ENGINES = cells.ENGINES[NAME]


def maxout(x, pieces: int):
    """Max over `pieces` contiguous channel slabs (see convbench.spec for the convention)."""
    n, c, h, w = x.shape
    return x.view(n, pieces, c // pieces, h, w).amax(dim=1)


class Maxout(nn.Module):
    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x):
        return maxout(x, self.pieces)


class ConvBlock(nn.Module):
    def __init__(self, block: Block, in_channels: int):
        super().__init__()
        self.radius_penalty, self.l0_penalty = block.radius_penalty, block.l0_penalty
        self.convs = nn.ModuleList()
        for _ in range(block.depth):
            if block.init_radius is None:
                conv = nn.Conv2d(in_channels, block.width, block.kernel, padding=block.kernel // 2)
            else:
                conv = MaskedConv2d(in_channels, block.width, block.kernel, block.init_radius)
            self.convs.append(conv)
            in_channels = block.out_channels
        self.activation = nn.ReLU() if block.activation == "relu" else Maxout(block.pieces)
        # Learned blocks have depth 1 (spec), so one gate follows their one convolution.
        self.gate = L0Gate(block.out_channels, block.init_log_alpha) if block.gates else nn.Identity()
        self.pool = nn.MaxPool2d(block.pool) if block.pool > 1 else nn.Identity()

    def forward(self, x):
        for conv in self.convs:
            x = self.activation(conv(x))
        return self.pool(self.gate(x))

    def penalties(self):
        """What this block adds to the loss, before the trainer's weights: its radii (x radius_penalty) and its
        expected number of open gates (x l0_penalty)."""
        radius = sum(self.radius_penalty * conv.penalty() for conv in self.convs if isinstance(conv, MaskedConv2d))
        return radius, self.l0_penalty * self.gate.penalty() if isinstance(self.gate, L0Gate) else 0.0


class ConvNet(nn.Module):
    def __init__(self, spec: ArchSpec):
        super().__init__()
        blocks, channels = [], spec.in_channels
        for block in spec.blocks:
            blocks.append(ConvBlock(block, channels))
            channels = block.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(channels, spec.num_classes)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x.mean(dim=(2, 3)))

    def penalties(self):
        """(radius term, L0 term) of the whole network."""
        terms = [block.penalties() for block in self.blocks]
        return sum(r for r, _ in terms), sum(g for _, g in terms)


def build(spec: ArchSpec, weights: dict[str, np.ndarray]) -> ConvNet:
    """The network of `spec` holding `weights` (neutral layout, which is PyTorch's own)."""
    model = ConvNet(spec)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in weights.items()})
    return model


def export_weights(model: ConvNet) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def configure(threads: int, cudnn_benchmark: bool = True, tf32: bool = False) -> None:
    """Threads (intra-op; inter-op 1) and, on GPUs, the policy the records state: cuDNN's autotuner on,
    TF32 off unless the config asks for it, in matrix products and convolutions alike."""
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process, or parallel work has started
        pass
    torch.backends.cudnn.benchmark = cudnn_benchmark
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def device_for(kind: str) -> torch.device:
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False")
    return torch.device(kind)


def environment(device: str) -> dict:
    env = {
        "versions": {"torch": torch.__version__},
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
        "flags": {
            "layout": LAYOUT,
            "mkldnn": torch.backends.mkldnn.is_available(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
        },
        "device_model": platform.processor() or platform.machine(),
    }
    if device == "cuda":
        env["device_model"] = torch.cuda.get_device_name()
        env["versions"]["cuda"] = torch.version.cuda
        env["versions"]["cudnn"] = torch.backends.cudnn.version()
        env["flags"]["cudnn_benchmark"] = torch.backends.cudnn.benchmark
        env["flags"]["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
        env["flags"]["tf32_cudnn"] = torch.backends.cudnn.allow_tf32
    return env


def compile_engine(model: ConvNet, engine: str) -> tuple[nn.Module, list[str]]:
    """The module that runs `model` under `engine`, sharing its parameters; and the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if engine in ("eager", "cudagraph"):  # cudagraph: the eager model, captured by GraphSteps at the first step
            net = model
        elif engine == "torchscript":
            net = torch.jit.script(model)
        elif engine == "compile":
            from torch._inductor import config as inductor_config

            # Compile in this process: a pool of compile workers would still be busy on the cores
            # while the first timed steps run. And no cache from an earlier cell's network.
            inductor_config.compile_threads = 1
            torch._dynamo.reset()
            net = torch.compile(model)
        else:
            raise ValueError(f"unknown PyTorch engine {engine!r} (known: {', '.join(ENGINES)})")
    return net, sorted({str(w.message) for w in caught})


class Trainer:
    """One network, its optimizer (SGD with momentum, or Adam) and loss, on one device; the phases of a step."""

    framework = NAME
    phase_method = "direct"  # autograd lets every engine stop between forward, backward and optimizer

    def __init__(self, spec: ArchSpec, weights, lr: float, momentum: float, device: str = "cpu", engine: str = "eager",
                 seed: int = 0, optimizer: str = "sgd", learned_lr: dict | None = None):
        torch.manual_seed(seed)  # what samples at training time (the L0 gates) draws from here
        self.device = device_for(device)
        self.clock = clock_for(self.device)  # timing.time_step's clock: CUDA events on a GPU
        self.model = build(spec, weights).to(self.device)
        self.learned = any(block.learned for block in spec.blocks)
        self.net, self.warnings = compile_engine(self.model, engine)
        # The learned radii and gates have optimizers and learning rates of their own (learned.LEARNED_KINDS), which
        # start with the penalties (start_learning); until then only the weights train.
        groups = {kind: [p for name, p in self.model.named_parameters() if learned.kind(name) == kind]
                  for kind in (None, *learned.LEARNED_KINDS)}

        def make(params, rate):
            if optimizer == "sgd":
                return torch.optim.SGD(params, lr=rate, momentum=momentum)
            # Keras's default epsilon, so that both frameworks run the same Adam
            return torch.optim.Adam(params, lr=rate, eps=1e-7, capturable=engine == "cudagraph")  # step count on GPU
        self.optimizer = make(groups[None], lr)
        self.learned_optimizers = [make(groups[kind], (learned_lr or {}).get(kind, lr))
                                   for kind in learned.LEARNED_KINDS if groups[kind]]
        self.penalty_weights = (0.0, 0.0)  # (radius, L0): set by start_learning
        self.optimizer_name = f"torch.optim.{type(self.optimizer).__name__} (default foreach implementation), eager"
        self._loss = None
        self.graphs = None  # cudagraph: the captured programs, made at the first step or phases()
        if engine == "cudagraph":
            if self.device.type != "cuda":
                raise ValueError("the cudagraph engine captures CUDA graphs: it needs device 'cuda'")
            self.phase_method = "derived"  # one graph cannot stop between phases: three graphs, as TF's engines
            self.optimizer_name = self.optimizer_name.replace(", eager", ", captured in the step's CUDA graph")

    def to_device(self, x: np.ndarray, y: np.ndarray):
        """Inputs in NCHW float32 and integer labels, placed on the device."""
        return torch.from_numpy(x).to(self.device), torch.from_numpy(y).long().to(self.device)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def sync(self) -> None:
        _sync_for(self.device)()

    # The three phases of a training step, timed one by one by convbench.timing.
    def forward(self, x, y):
        self._loss = F.cross_entropy(self.net(x), y) + self.penalty()

    def penalty(self):
        """The penalties as they stand: 0 until start_learning."""
        if not (self.learned and self.learning):
            return 0.0
        return sum(w * t for w, t in zip(self.penalty_weights, self.model.penalties()))

    @property
    def learning(self) -> bool:
        return self.penalty_weights != (0.0, 0.0)

    def start_learning(self, train_size: int) -> None:
        """The second phase: the radii and gates train from now on, and the penalties join the loss, the L0 term
        divided by the training-set size (Louizos et al. 2018, eq. 3)."""
        self.penalty_weights = (1.0, 1.0 / train_size)

    def backward(self):
        self._loss.backward()

    def optimizer_step(self):
        for optimizer in [self.optimizer, *(self.learned_optimizers if self.learning else [])]:
            optimizer.step()
        self.model.zero_grad(set_to_none=True)

    def phases(self, x, y) -> dict:
        if self.phase_method == "derived":  # cumulative graphs; timing.derive_phases subtracts them
            graphs = self._graphs(x, y)
            return {name: graphs.replayer(name, x, y) for name in GraphSteps.PROGRAMS}
        return {"forward": lambda: self.forward(x, y), "backward": self.backward, "optimizer": self.optimizer_step}

    def step(self, x, y) -> None:
        if self.phase_method == "derived":
            self._graphs(x, y).replay("step", x, y)
            return
        self.forward(x, y)
        self.backward()
        self.optimizer_step()

    def _graphs(self, x, y) -> GraphSteps:
        if self.graphs is None:
            self.graphs = GraphSteps(self, x, y)
            self._loss = self.graphs.loss
        return self.graphs

    def train_step(self, x, y) -> float:
        self.step(x, y)
        return self._loss.item()

    def memory(self, x, y) -> dict:
        """Bytes autograd saves for the backward of one step (activations and the weights it keeps),
        counted with saved-tensor hooks; and the device's peak allocation over one step on CUDA."""
        saved = 0

        def pack(tensor):
            nonlocal saved
            saved += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = F.cross_entropy(self.net(x), y)
        del loss
        peak = None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.step(x, y)
            self.sync()
            peak = torch.cuda.max_memory_allocated(self.device)
        return {"saved_for_backward_bytes": saved, "peak_bytes": peak}

    @torch.no_grad()
    def evaluate(self, x, y) -> tuple[float, float]:
        """Summed loss and number of correct predictions on one batch, with test-time gates."""
        logits = self.logits_tensor(x)
        loss = F.cross_entropy(logits, y, reduction="sum").item()
        return loss, (logits.argmax(1) == y).sum().item()

    def gradients(self, x, y) -> dict[str, np.ndarray]:
        """Loss gradients w.r.t. every weight (neutral names) and the input ("input")."""
        x = x.clone().requires_grad_(True)
        names, params = zip(*self.model.named_parameters())
        loss = F.cross_entropy(self.net(x), y) + self.penalty()
        grads = torch.autograd.grad(loss, [x, *params])
        named = {name: g.cpu().numpy() for name, g in zip(names, grads[1:])}
        named["input"] = grads[0].cpu().numpy()
        named["loss"] = loss.detach().cpu().numpy()
        return named

    @torch.no_grad()
    def logits_tensor(self, x):
        if not self.learned:  # no gates, nothing differs between modes: skip a recompile under torch.compile
            return self.net(x)
        self.net.eval()  # a TorchScript module keeps a training flag of its own
        try:
            return self.net(x)
        finally:
            self.net.train()

    def logits(self, x) -> np.ndarray:
        return self.logits_tensor(x).cpu().numpy()


class GraphSteps:
    """A training step captured as CUDA graphs on static inputs, as PyTorch's documentation captures a whole network
    with its optimizer (torch.cuda.graphs, "whole-network capture"): a few eager steps on a side stream first (they
    also create the optimizer's state, which the graphs then update in place), gradients set to None before each
    capture so that the graph allocates its own, and new inputs copied into the static tensors before a replay.

    Three programs, each one graph: forward (with the loss), forward and backward, and the whole step (forward,
    backward, optimizer step). A replay launches the whole program at once: no per-kernel launch cost from Python.
    """

    PROGRAMS = ("forward", "forward_backward", "step")

    def __init__(self, trainer: Trainer, x, y, warmup: int = 3):
        self.x, self.y = x, y
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                trainer.forward(x, y)
                trainer.backward()
                trainer.optimizer_step()
        torch.cuda.current_stream().wait_stream(side)
        bodies = {"forward": lambda: trainer.forward(x, y),
                  "forward_backward": lambda: (trainer.forward(x, y), trainer.backward()),
                  "step": lambda: (trainer.forward(x, y), trainer.backward(), trainer.optimizer.step())}
        self.graphs = {}
        for name in self.PROGRAMS:
            trainer.optimizer.zero_grad(set_to_none=True)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                bodies[name]()
            self.graphs[name] = graph
        self.loss = trainer._loss  # the step graph's: updated in place by every replay of it

    def replay(self, name: str, x, y) -> None:
        if x is not self.x:
            self.x.copy_(x)
            self.y.copy_(y)
        self.graphs[name].replay()

    def replayer(self, name: str, x, y):
        return lambda: self.replay(name, x, y)


def _sync_for(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def clock_for(device: torch.device):
    """A block of steps timed by CUDA events on the GPU's own stream (timing.Clock), as a training loop's steps run
    back to back; None on the CPU, where timing.host_clock reads the host clock."""
    if device.type != "cuda":
        return None

    def timed(body, n: int) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        for _ in range(n):
            body()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3  # ms
    return timed


def layer_phases(block: Block, tensors: dict[str, np.ndarray], device: str = "cpu"):
    """One convolution and its activation, each direction on its own: forward, backward to the input,
    backward to the weights (and bias), activation forward and backward. Returns (phases, sync);
    each phase returns what it computed."""
    dev = device_for(device)
    t = {name: torch.from_numpy(value).to(dev) for name, value in tensors.items()}
    x, w, b, grad_out = t["x"], t["weight"], t["bias"], t["grad_out"]
    pad = block.kernel // 2
    activation = F.relu if block.activation == "relu" else (lambda v: maxout(v, block.pieces))
    pre = t["pre"].requires_grad_(True)
    post = activation(pre)  # kept with its graph, so the activation's backward can run again and again

    def conv_backward(mask):
        return torch.ops.aten.convolution_backward(
            grad_out, x, w, [block.width], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask)

    phases = {
        "forward": lambda: F.conv2d(x, w, b, padding=pad),
        "backward_input": lambda: conv_backward([True, False, False])[0],
        "backward_weight": lambda: conv_backward([False, True, True])[1:],
        "activation_forward": lambda: activation(pre.detach()),
        "activation_backward": lambda: torch.autograd.grad(post, pre, t["grad_post"], retain_graph=True)[0],
    }
    return phases, _sync_for(dev)


def ceilings(device: str, gemm_n: int, copy_bytes: int):
    """Programs that find the device's own ceilings: fp32 GEMM (n x n) and a streaming scale
    (reads and writes copy_bytes). Returns (programs, flops and bytes per call, sync)."""
    dev = device_for(device)
    a, b = torch.randn(gemm_n, gemm_n, device=dev), torch.randn(gemm_n, gemm_n, device=dev)
    src = torch.ones(copy_bytes // 4, device=dev)
    dst = torch.empty_like(src)
    programs = {"gemm": lambda: torch.mm(a, b), "stream": lambda: torch.mul(src, 2.0, out=dst)}
    return programs, {"gemm": 2 * gemm_n**3, "stream": 2 * copy_bytes}, _sync_for(dev)
