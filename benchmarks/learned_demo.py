"""Learned kernel size and filter count on scikit-learn digits, in PyTorch: train, crop, prune, time.

    python benchmarks/learned_demo.py [--epochs 15] [--radius-penalty 0.2] [--l0-penalty 0.02] [--seed 0]

Two blocks, each a 7x7 masked convolution (learnable radius, ramp mask) with hard-concrete L0 gates
on its filters, ReLU, 2x2 max-pool; global mean and a linear head. The loss is cross-entropy plus
radius_penalty * (sum of the layers' mean radius) plus l0_penalty * (expected number of open gates).
After training, each conv is cropped to its effective size and its closed filters are removed; the
result is an ordinary convbench ConvNet (torch_backend) built from an ArchSpec, checked to give the
gated net's test-time logits, then timed against the masked net.
"""
import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convbench import data, learned, timing
from convbench.backends import torch_backend
from convbench.backends import torch_learned as tl
from convbench.spec import ArchSpec, Block, init_weights

MAX_KERNEL, INIT_RADIUS, INIT_LOG_ALPHA = 7, 3.0, 2.0
WIDTHS = (16, 32)


class LearnedNet(nn.Module):
    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.convs, self.gates, channels = nn.ModuleList(), nn.ModuleList(), in_channels
        for width in WIDTHS:
            self.convs.append(tl.MaskedConv2d(channels, width, MAX_KERNEL, INIT_RADIUS))
            self.gates.append(tl.L0Gate(width, INIT_LOG_ALPHA))
            channels = width
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x):
        for conv, gate in zip(self.convs, self.gates):
            x = F.max_pool2d(gate(F.relu(conv(x))), 2)
        return self.head(x.mean(dim=(2, 3)))

    def penalties(self):
        return sum(c.penalty() for c in self.convs), sum(g.penalty() for g in self.gates)


def accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        logits = model(x)
    return (logits.argmax(1) == y).float().mean().item(), logits


def shrink(model, threshold):
    """Crop every conv at `threshold`, prune its closed filters: an ArchSpec and its neutral weights."""
    convs = [tl.crop(conv, threshold=threshold) for conv in model.convs]
    head = {"weight": model.head.weight.detach().numpy(), "bias": model.head.bias.detach().numpy()}
    blocks, weights = [], {}
    for i, gate in enumerate(model.gates):
        after = convs[i + 1] if i + 1 < len(convs) else head  # loses the inputs this conv's pruning removes
        convs[i], after["weight"], kept = tl.prune(convs[i], gate, after["weight"])
        blocks.append(Block(width=len(kept), kernel=convs[i]["weight"].shape[-1]))
        weights[f"blocks.{i}.convs.0.weight"] = convs[i]["weight"]
        weights[f"blocks.{i}.convs.0.bias"] = convs[i]["bias"]
    weights["head.weight"], weights["head.bias"] = head["weight"], head["bias"]
    return ArchSpec("shrunk", tuple(blocks), model.convs[0].weight.shape[1], model.head.out_features), weights


def step_program(model, x, y, penalties=None):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9)  # lr 0: timing only

    def step():
        model.train()
        loss = F.cross_entropy(model(x), y)
        if penalties is not None:
            loss = loss + sum(penalties())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def forward_program(model, x):
    def forward():
        model.eval()
        with torch.no_grad():
            model(x)

    return forward


def time_interleaved(programs: dict, rounds: int = 10) -> dict:
    """Median and IQR (ms) of each program, timed in alternating rounds so that a drift of a shared
    machine's load hits all of them alike."""
    protocol = timing.Protocol(warmup=3, min_repeats=20, max_repeats=20)
    samples = {name: [] for name in programs}
    for _ in range(rounds):
        for name, program in programs.items():
            samples[name] += timing.time_step(program, lambda: None, protocol).samples  # CPU: no sync
    return {name: (1e3 * timing.Measurement(s).median, 1e3 * timing.Measurement(s).iqr) for name, s in samples.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--radius-penalty", type=float, default=0.2)
    parser.add_argument("--l0-penalty", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch_backend.configure(args.threads)
    torch.manual_seed(args.seed)

    ds = data.load("digits", seed=args.seed)
    x_train, y_train = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    x_test, y_test = torch.from_numpy(ds.x_test), torch.from_numpy(ds.y_test)
    model = LearnedNet(ds.in_channels, ds.num_classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    print(f"digits: {len(x_train)} train / {len(x_test)} test, 8x8; K = {MAX_KERNEL}, init radius {INIT_RADIUS}, "
          f"init log_alpha {INIT_LOG_ALPHA}; Adam lr {args.lr}, batch {args.batch}; "
          f"radius_penalty {args.radius_penalty}, l0_penalty {args.l0_penalty}")
    print("epoch  loss    test_acc  radius per layer   expected open gates  open at test time")
    rng = np.random.default_rng(args.seed)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order, total = rng.permutation(len(x_train)), 0.0
        for start in range(0, len(order), args.batch):
            idx = torch.from_numpy(order[start:start + args.batch])
            radius_term, l0_term = model.penalties()
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            (loss + args.radius_penalty * radius_term + args.l0_penalty * l0_term).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total += loss.item() * len(idx)
        acc, _ = accuracy(model, x_test, y_test)
        radii = [f"{c.radius.item():.2f}" for c in model.convs]
        expected = [f"{g.penalty().item():.1f}" for g in model.gates]
        open_now = [int((tl.test_gate(g.log_alpha) > 0).sum()) for g in model.gates]
        print(f"{epoch:5d}  {total / len(x_train):.4f}  {acc:.4f}    {' '.join(radii):17s}  "
              f"{' '.join(expected):19s}  {open_now}")

    acc_gated, logits_gated = accuracy(model, x_test, y_test)
    print(f"\nmasked + gated net (test time): test accuracy {acc_gated:.4f}")
    # threshold 0 keeps every nonzero tap (an exact crop); 0.5 also drops the ramp's outer ring where
    # its mask is <= 0.5, to show what that costs.
    shrunk = {threshold: shrink(model, threshold) for threshold in (0.0, 0.5)}
    for threshold, (spec, weights) in shrunk.items():
        sizes = [learned.effective_size(c.mask().detach().numpy(), threshold) for c in model.convs]
        acc, logits = accuracy(torch_backend.build(spec, weights), x_test, y_test)
        diff = (logits - logits_gated).abs().max().item()
        print(f"threshold {threshold}: effective kernel sizes {sizes}, filters kept "
              f"{[b.width for b in spec.blocks]} of {list(WIDTHS)}; cropped + pruned test accuracy {acc:.4f}, "
              f"max |logit difference| {diff:.2e} ({spec.describe()})")

    x, y = x_train[:64], y_train[:64]
    reference = ArchSpec("plain", tuple(Block(width=w, kernel=MAX_KERNEL) for w in WIDTHS), ds.in_channels, 10)
    timed = {
        "plain 7x7 net, full widths": (torch_backend.build(reference, init_weights(reference, 0)), None),
        "masked + gated net": (model, model.penalties),
        "cropped + pruned net (threshold 0)": (torch_backend.build(*shrunk[0.0]), None),
    }
    programs = {}
    for name, (net, penalties) in timed.items():
        programs[(name, "step")] = step_program(net, x, y, penalties)
        programs[(name, "forward")] = forward_program(net, x)
    times = time_interleaved(programs)
    print(f"\nbatch 64, {torch.get_num_threads()} threads, median (IQR) in ms over alternating rounds: training step "
          f"(forward, backward, SGD; gates sampled, penalties included) and test-time forward")
    for name in timed:
        (step, step_iqr), (forward, forward_iqr) = times[(name, "step")], times[(name, "forward")]
        print(f"  {name:36s} step {step:6.3f} ({step_iqr:.3f})   forward {forward:6.3f} ({forward_iqr:.3f})")

if __name__ == "__main__":
    main()
