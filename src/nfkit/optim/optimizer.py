"""``LearnedOptimizer``: a ``torch.optim.Optimizer`` whose update is an equivariant network (UNF §4.2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nfkit.errors import SpecMismatchError, UnsupportedModuleError
from nfkit.groups.neurons import HiddenNeuronGroup, permutations
from nfkit.optim.rule import (
    ADAM_EPS,
    INPUT_CHANNELS,
    MOMENTUM_DECAYS,
    SECOND_MOMENT_DECAY,
    TIMESCALES,
    UpdateRule,
)
from nfkit.spaces.convert import layer_parameters, spec_of
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["LearnedOptimizer"]

_NORMALISED = len(INPUT_CHANNELS) - len(TIMESCALES)  # channels divided by their RMS; the rest are step features


class LearnedOptimizer(torch.optim.Optimizer):
    """An optimizer for ``model`` whose update rule is an equivariant network over its weight space.

    Per step it builds weight-space features with the channels :data:`~nfkit.optim.rule.INPUT_CHANNELS`
    (the parameter, its gradient, momenta at decays :data:`~nfkit.optim.rule.MOMENTUM_DECAYS`, Adam's
    direction, and the step count at time scales :data:`~nfkit.optim.rule.TIMESCALES`), runs the rule's
    network f on them, and applies (UNF, Zhou et al. 2024, §4.2)

    .. math:: W \\leftarrow W - \\alpha_t\\,(d + \\beta f)

    with ``d`` the rule's base direction. f is equivariant to the optimised network's neuron
    permutations, so stepping a permuted network equals permuting the stepped one.

    Args:
        model: an ``nn.Sequential`` MLP or CNN (:func:`~nfkit.spaces.spec_of`); every one of its
            parameters must belong to its weight space.
        update: the name of a family for a fresh rule (``"np"``, ``"hnp"``, …, ``"per-parameter"``),
            or an :class:`~nfkit.optim.UpdateRule` (shared, not copied: meta-training steps many
            networks with one rule).
        **options: for a fresh rule: ``hidden_channels``, ``base``, ``learning_rate``, ``beta``.

    Example:
        >>> from torch import nn
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> opt = LearnedOptimizer(net, "np", hidden_channels=[8])
        >>> x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
        >>> loss = nn.functional.cross_entropy(net(x), y)
        >>> loss.backward(); opt.step(); opt.zero_grad()
        >>> bool(nn.functional.cross_entropy(net(x), y) < loss)
        True
    """

    def __init__(self, model: nn.Module, update: str | UpdateRule = "np", **options: Any) -> None:
        layers = layer_parameters(model)  # the dense view's live parameters: names what it cannot read
        spec = spec_of(model)
        assert isinstance(spec, WeightSpaceSpec)
        params = [p for pair in layers for p in pair if p is not None]
        mine = {id(p) for p in params}
        outside = [name for name, p in model.named_parameters() if id(p) not in mine]
        if outside:
            raise UnsupportedModuleError(
                f"the model has parameters outside its weight space ({', '.join(outside[:3])}); "
                f"a learned optimizer must see every parameter it updates"
            )
        if isinstance(update, UpdateRule):
            if options:
                raise TypeError(f"options ({', '.join(options)}) configure a fresh rule; the given rule is already built")
            rule = update
        else:
            rule = UpdateRule(spec, update, **options).to(dtype=params[0].dtype, device=params[0].device)
        rule.network_for(spec)  # a rule for another layer structure fails here, not at the first step
        super().__init__(params, defaults={})
        self.spec = spec
        self.rule = rule
        self._layers = layers

    @property
    def group(self) -> HiddenNeuronGroup:
        """The group a step commutes with: the optimised network's hidden-neuron permutations.

        (f may respect more, e.g. ``np`` also permutes inputs and outputs; the per-entry parts of the
        step, momenta and Adam's direction, commute with any permutation of entries.)
        """
        return permutations(self.spec.hidden_sizes)

    @classmethod
    def load(cls, path: str | Path, model: nn.Module) -> LearnedOptimizer:
        """A meta-trained optimizer (written by ``nfkit optim meta-train``) for ``model``."""
        rule = UpdateRule.load(path)
        first = next(iter(model.parameters()), None)
        if first is not None:
            rule = rule.to(dtype=first.dtype, device=first.device)
        return cls(model, rule)

    def _moments(self, p: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, int]:
        """Update ``p``'s state; return its gradient (zeros if none), bias-corrected momenta, Adam direction, step."""
        grad = p.grad if p.grad is not None else torch.zeros_like(p)
        if grad.is_sparse:
            raise SpecMismatchError("LearnedOptimizer does not take sparse gradients")
        state = self.state[p]
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float64)
            for k in range(len(MOMENTUM_DECAYS)):
                state[f"momentum{k}"] = torch.zeros_like(p)
            state["second_moment"] = torch.zeros_like(p)
        state["step"] += 1
        t = int(state["step"])
        momenta = []
        for k, decay in enumerate(MOMENTUM_DECAYS):
            m = state[f"momentum{k}"]
            m.mul_(decay).add_(grad, alpha=1 - decay)
            momenta.append(m / (1 - decay**t))
        v = state["second_moment"]
        v.mul_(SECOND_MOMENT_DECAY).addcmul_(grad, grad, value=1 - SECOND_MOMENT_DECAY)
        adam = momenta[0] / ((v / (1 - SECOND_MOMENT_DECAY**t)).sqrt() + ADAM_EPS)
        return grad, momenta, adam, t

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update of every parameter. Shapes: each parameter keeps its shape."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        dtype, device = self.rule.beta.dtype, self.rule.beta.device
        channels: list[list[torch.Tensor]] = []  # per tensor in spec order (weight, bias per layer): (C, *shape)
        bases: list[torch.Tensor] = []
        step = 1
        for layer, (weight, bias) in zip(self.spec.layers, self._layers):
            for p, shape in ((weight, layer.weight_shape), (bias, (layer.n_out,))):
                if p is None:  # a layer without bias: zero features, and its update is dropped
                    zero = torch.zeros(shape, dtype=dtype, device=device)
                    channels.append([zero] * _NORMALISED)
                    bases.append(zero)
                    continue
                grad, momenta, adam, step = self._moments(p)
                base = adam if self.rule.base == "adam" else momenta[0]
                channels.append([t.to(dtype) for t in (p.detach(), grad, *momenta, adam)])
                bases.append(base.to(dtype))
        count = sum(c[0].numel() for c in channels)
        rms = [torch.sqrt(torch.stack([c[k].square().sum() for c in channels]).sum() / count + 1e-30) for k in range(_NORMALISED)]
        times = [torch.tanh(torch.tensor(step / tau, dtype=dtype, device=device)) for tau in TIMESCALES]
        tensors = [
            torch.stack([c[k] / rms[k] for k in range(_NORMALISED)] + [times[k].expand_as(c[0]) for k in range(len(TIMESCALES))])[None]
            for c in channels
        ]
        features = WeightSpaceFeatures(self.spec, tensors[0::2], tensors[1::2])
        base_features = WeightSpaceFeatures(self.spec, [b[None, None] for b in bases[0::2]], [b[None, None] for b in bases[1::2]])
        direction = self.rule.direction(features, base_features)
        rate = self.rule.learning_rate(step)
        for (weight, bias), dw, db in zip(self._layers, direction.weights, direction.biases):
            weight.sub_((rate * dw[0, 0]).to(weight.dtype))
            if bias is not None:
                bias.sub_((rate * db[0, 0]).to(bias.dtype))
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The optimizer state (momenta, steps) and the rule (configuration and parameters)."""
        state = super().state_dict()
        state["rule"] = {"config": self.rule.config(), "parameters": self.rule.state_dict()}
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`, rule included (its configuration must match this optimizer's)."""
        state_dict = dict(state_dict)
        rule = state_dict.pop("rule", None)
        if rule is not None:
            if rule.get("config", {}).get("family") != self.rule.family:
                raise SpecMismatchError(
                    f"the state holds a {rule.get('config', {}).get('family')!r} rule; this optimizer's is {self.rule.family!r}"
                )
            self.rule.load_state_dict(rule["parameters"])
        super().load_state_dict(state_dict)
