"""Speed and memory benchmarks (not tests): every registered model and the reference ``nfn==0.1.2``.

One measurement is a model's forward and backward pass on a batch of input networks' weights:
the median wall time over ``reps`` repetitions after one warm-up, and the peak memory of one
more pass (:func:`peak_step_mib`: the most bytes tensors hold at once during it, over what they
held before; gradients are zeroed with ``set_to_none`` so they count). Every measurement runs in
a fresh subprocess.

**Ratios that survive a shared machine.** A case may name a ``partner`` (the row its ratio is
taken against). The partner is then built in the same process, warmed up too, and the two
passes alternate ``A, B, A, B, …``. Each adjacent pair gives one time ratio, so a neighbour's load
falls on both sides of it. The measurement keeps every pair's ratio (:attr:`Measurement.ratios`),
and the report gives their median and spread. Absolute times can still move with the load;
ratios taken this way stay put.

The compared stack for a family with an equivariant form is ``equivariant(name, spec,
hidden_channels=[C, C])``: layers ``1→C→C→1`` with the family's nonlinearities; invariant-only
families (``statnn``, ``inr2array``) run ``invariant(name, spec, hidden_channels=[C, C])``.
The reference rows build the same ``1→C→C→1`` stacks from ``nfn.layers.NPLinear`` /
``HNPLinear`` with ``TupleOp(ReLU)`` (Zhou et al. 2023's package; install ``nfkit[bench]``).
:func:`same_function_space` shows, by least squares, that nfkit's NP/HNP layers can express the
reference layers exactly.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from nfkit.errors import UnsupportedArchitectureError
from nfkit.nets.architectures import REFERENCE_ARCHITECTURES
from nfkit.spaces import UniversalSpec, WeightSpaceSpec, spec_of
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.named_features import NamedFeatures
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.transformer_spec import TransformerSpec

__all__ = ["Case", "Measurement", "measure", "peak_step_mib", "measure_isolated", "same_function_space", "reference_stack", "BENCH_ARCHITECTURES"]

#: The input networks of the comparison table (names of :data:`nfkit.nets.architectures.REFERENCE_ARCHITECTURES`).
BENCH_ARCHITECTURES: dict[str, str] = {
    "siren 2-32-32-1": "siren-mnist",
    "small cnn zoo": "small-cnn-zoo",
    "mlp 784-64-64-10": "mnist-mlp",
}

#: Reference rows: nfn's layer class for each of nfkit's families that compute the same function.
REFERENCE_LAYERS: dict[str, str] = {"nfn-np": "NPLinear", "nfn-hnp": "HNPLinear"}

FLOOR = "channel-mixing floor"

#: Repetitions are cut so that the timed passes of one case take about this long at most (at least one).
LONG_PASS_BUDGET_S = 60.0


@dataclass(frozen=True)
class Case:
    """One configuration to measure.

    Attributes:
        model: a registered family, a family with options (``"np[recompute=8]"``, :func:`variant`),
            ``"nfn-np"``/``"nfn-hnp"`` (reference) or :data:`FLOOR`.
        architecture: a :data:`BENCH_ARCHITECTURES` value, or ``"mlp:2-64-64-1"`` (an MLP by sizes,
            ReLU).
        batch: input networks per batch.
        channels: the stack's hidden channels C.
        reps: timed repetitions.
        device: ``"cpu"`` or ``"cuda"``.
        partner: a model timed alternately with this one in the same process (``""``: none).
        compile: ``torch.compile`` the model (and its partner); the compile time is reported
            separately (:attr:`Measurement.compile_s`), never inside the timed passes.
    """

    model: str
    architecture: str
    batch: int = 32
    channels: int = 32
    reps: int = 5
    device: str = "cpu"
    partner: str = ""
    compile: bool = False


@dataclass
class Measurement:
    """The result of one :class:`Case`: ``status`` is ``"ok"``, ``"n/a"`` (with ``note``) or ``"failed"``."""

    case: Case
    status: str
    form: str = ""
    input_parameters: int = 0
    parameters: int = 0
    median_s: float = math.nan
    peak_mib: float = math.nan
    note: str = ""
    #: time ratios to :attr:`Case.partner`, one per alternating pair (empty without a partner)
    ratios: list[float] = field(default_factory=list)
    #: with :attr:`Case.compile`: seconds of the first (compiling) pass
    compile_s: float | None = None

    def ratio_summary(self) -> tuple[float, float, float] | None:
        """``(median, min, max)`` of the interleaved time ratios, or ``None`` without them."""
        if not self.ratios:
            return None
        return statistics.median(self.ratios), min(self.ratios), max(self.ratios)

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(asdict(self))

    @staticmethod
    def from_json(line: str) -> Measurement:
        """Inverse of :meth:`to_json`."""
        raw = json.loads(line)
        return Measurement(case=Case(**raw.pop("case")), **raw)


def input_spec(architecture: str) -> WeightSpaceSpec | TransformerSpec | UniversalSpec:
    """The weight-space spec of a benchmark input network (see :attr:`Case.architecture`)."""
    if architecture.startswith("mlp:"):
        return WeightSpaceSpec.mlp([int(s) for s in architecture[4:].split("-")], "relu")
    if architecture not in REFERENCE_ARCHITECTURES:
        raise KeyError(f"unknown benchmark architecture {architecture!r}; use one of {sorted(REFERENCE_ARCHITECTURES)} or 'mlp:a-b-c'")
    return spec_of(REFERENCE_ARCHITECTURES[architecture]())


class _ReferenceStack(nn.Module):
    """``nfn`` layers of the given widths with ReLU between, reading nfkit features (outputs: weights, then biases)."""

    def __init__(self, layer: str, spec: WeightSpaceSpec, widths: Sequence[int]) -> None:
        super().__init__()
        import nfn.layers as ref
        from nfn.common import WeightSpaceFeatures, network_spec_from_wsfeat

        self._wrap = WeightSpaceFeatures
        probe = spec.zeros(1)
        network = network_spec_from_wsfeat(WeightSpaceFeatures(list(probe.weights), list(probe.biases)))
        linear = getattr(ref, layer)
        modules: list[nn.Module] = []
        for i, (c, e) in enumerate(zip(widths, widths[1:])):
            modules.append(linear(network, c, e))
            if i < len(widths) - 2:
                modules.append(ref.TupleOp(nn.ReLU()))
        self.stack = nn.Sequential(*modules)

    def forward(self, features: WeightSpaceFeatures) -> list[torch.Tensor]:
        out = self.stack(self._wrap(list(features.weights), list(features.biases)))
        return list(out.weights) + list(out.biases)


def reference_stack(model: str, spec: WeightSpaceSpec | TransformerSpec | UniversalSpec, channels: int) -> nn.Module:
    """The reference package's ``1→C→C→1`` stack for ``"nfn-np"`` or ``"nfn-hnp"`` (needs ``nfn==0.1.2``)."""
    if not isinstance(spec, WeightSpaceSpec):
        raise UnsupportedArchitectureError(f"{model} reads MLP and CNN weight spaces only")
    return _ReferenceStack(REFERENCE_LAYERS[model], spec, [1, channels, channels, 1])


class _ChannelMixingFloor(nn.Module):
    """Per-entry ``1→C→C→1`` MLP with ReLUs on every tensor: the cost below which no NP stack goes."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(1, channels), nn.ReLU(), nn.Linear(channels, channels), nn.ReLU(), nn.Linear(channels, 1))

    def forward(self, features: WeightSpaceFeatures | TransformerFeatures) -> list[torch.Tensor]:
        return [self.mlp(t.movedim(1, -1)) for t in features.tensors()]


def variant(model: str) -> tuple[str, dict[str, Any]]:
    """A row name split into the family and its options: ``"np[recompute=8]"`` → ``("np", {"recompute": 8})``.

    Values are JSON; a name without brackets has no options.
    """
    if not model.endswith("]") or "[" not in model:
        return model, {}
    name, _, inner = model[:-1].partition("[")
    options = {}
    for item in filter(None, inner.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"bench row {model!r}: options are key=value, got {item!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f"bench row {model!r}: {key}={value} is not a JSON value") from error
    return name, options


def _build(case: Case, spec: WeightSpaceSpec | TransformerSpec | UniversalSpec) -> tuple[nn.Module, str]:
    import nfkit.models

    c = case.channels
    if case.model == FLOOR:
        return _ChannelMixingFloor(c), "per-entry MLP"
    if case.model in REFERENCE_LAYERS:
        return reference_stack(case.model, spec, c), f"equivariant 1→{c}→{c}→1 (nfn {REFERENCE_LAYERS[case.model]})"
    name, options = variant(case.model)
    family = nfkit.models.family(name)
    if family.equivariant is not None:
        return nfkit.models.equivariant(name, spec, hidden_channels=[c, c], **options), f"equivariant 1→{c}→{c}→1"
    return nfkit.models.invariant(name, spec, hidden_channels=[c, c], **options), f"invariant, hidden {c}, {c}"


def _total(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output.sum()
    if isinstance(output, (list, tuple)):
        return sum((_total(o) for o in output), torch.zeros(()))
    if isinstance(output, NamedFeatures):
        return sum((t.sum() for t in output.tensors()), torch.zeros((), dtype=output.dtype, device=output.device))
    raise TypeError(f"cannot sum a {type(output).__name__}")


def peak_step_mib(step: Callable[[], None], device: str = "cpu") -> float:
    """The most memory tensors held at once while ``step`` runs, above what they held before it.

    CPU: from the allocation events of ``torch.profiler`` (``profile_memory=True``), summed in time
    order, so allocator caching and the interpreter do not count; CUDA: ``max_memory_allocated``.
    """
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20


def measure(case: Case) -> Measurement:
    """Measure ``case`` in this process (use :func:`measure_isolated` for a trustworthy peak)."""
    from nfkit.errors import UnsupportedArchitectureError

    torch.manual_seed(0)
    spec = input_spec(case.architecture)
    features = spec.randn(case.batch, 1)
    result = Measurement(case, "ok", input_parameters=int(spec.zeros(1).flatten().shape[-1]))
    try:
        model, result.form = _build(case, spec)
    except (UnsupportedArchitectureError, ValueError) as err:
        return Measurement(case, "n/a", note=str(err).splitlines()[0][:120])
    model = model.to(case.device)
    features = features.to(case.device) if case.device != "cpu" else features
    result.parameters = sum(p.numel() for p in model.parameters())
    partner = None
    if case.partner:
        try:
            partner = _build(replace(case, model=case.partner, partner=""), spec)[0].to(case.device)
        except (UnsupportedArchitectureError, ValueError):
            partner = None  # no ratio to take; the row itself still stands

    def stepper(module: nn.Module) -> Callable[[], None]:
        def step() -> None:
            module.zero_grad(set_to_none=True)
            _total(module(features)).backward()
        return step

    def timed(step: Callable[[], None]) -> float:
        start = time.perf_counter()
        step()
        if case.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    if case.compile:
        model = torch.compile(model)  # type: ignore[assignment]  # an OptimizedModule, called like the model
        partner = torch.compile(partner) if partner is not None else None  # type: ignore[assignment]
    step = stepper(model)
    warm = timed(step)  # warm-up (with compile: the compilation)
    if case.compile:
        result.compile_s = warm
        warm = timed(step)
    partner_step = stepper(partner) if partner is not None else None
    if partner_step is not None:
        warm += timed(partner_step)
    times, partner_times = [], []
    for _ in range(max(1, min(case.reps, int(LONG_PASS_BUDGET_S / warm)))):
        times.append(timed(step))
        if partner_step is not None:
            partner_times.append(timed(partner_step))  # A, B, A, B: both sides of a ratio see the same load
    result.median_s = statistics.median(times)
    result.ratios = [a / b for a, b in zip(times, partner_times) if b > 0]
    result.peak_mib = peak_step_mib(step, case.device)
    return result


def measure_isolated(case: Case, timeout: float = 600.0) -> Measurement:
    """:func:`measure` in a fresh interpreter; a crash, out-of-memory kill or timeout is ``"failed"``."""
    # -c rather than -m: running a module of an already imported package warns (runpy), and that warning was
    # the only stderr line of a worker the kernel killed, so it stood in the table as the reason
    worker = "import sys; from nfkit.bench.measure import _worker; raise SystemExit(_worker(sys.argv[1:]))"
    command = [sys.executable, "-c", worker, json.dumps(asdict(case))]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Measurement(case, "failed", note=f"timeout after {timeout:.0f} s")
    lines = done.stdout.strip().splitlines()
    if done.returncode < 0:
        return Measurement(case, "failed", note=f"killed by signal {-done.returncode} (out of memory?)")
    if done.returncode != 0 or not lines:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        return Measurement(case, "failed", note=reason[:160])
    return Measurement.from_json(lines[-1])


def same_function_space(ours: nn.Module, theirs: nn.Module, features: WeightSpaceFeatures, *, samples: int = 3) -> float:
    """How well ``ours`` can reproduce ``theirs``: the relative least-squares residual.

    Both modules must be linear in their parameters for fixed input (single linear layers are).
    ``theirs``'s output on ``samples`` random feature batches is fitted by the best choice of
    ``ours``'s parameters (via the Jacobian in float64); a residual near 1e-12 means every function
    ``theirs`` computes is one ``ours`` computes too.

    Shapes:
        ``features``: a batch of weight-space features with the modules' input channels.
    """
    from torch.func import functional_call, jacrev

    ours, theirs = ours.double(), theirs.double()
    names = [n for n, _ in ours.named_parameters()]
    params = {n: torch.zeros_like(p) for n, p in ours.named_parameters()}

    def flat_output(module: nn.Module, p: dict[str, torch.Tensor] | None, x: WeightSpaceFeatures) -> torch.Tensor:
        out = module(x) if p is None else functional_call(module, p, (x,))
        tensors = out if isinstance(out, (list, tuple)) else [*out.weights, *out.biases]
        return torch.cat([t.reshape(-1) for t in tensors])

    rows, targets = [], []
    for s in range(samples):
        torch.manual_seed(s)
        x = features.spec.randn(features.batch_size, features.channels, dtype=torch.float64)
        jac = jacrev(lambda p: flat_output(ours, p, x))(params)  # noqa: B023
        rows.append(torch.cat([jac[n].reshape(jac[n].shape[0], -1) for n in names], dim=1))
        targets.append(flat_output(theirs, None, x).detach())
    a, b = torch.cat(rows), torch.cat(targets)
    solution = torch.linalg.lstsq(a, b.unsqueeze(1), driver="gelsd").solution
    return float(torch.linalg.norm(a @ solution - b.unsqueeze(1)) / torch.linalg.norm(b))


def _worker(argv: Sequence[str]) -> int:
    print(measure(Case(**json.loads(argv[0]))).to_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker(sys.argv[1:]))
