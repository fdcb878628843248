"""The learned update rule: an equivariant network over the optimised network's weight space.

UNF (Zhou, Finn, Harrison, NeurIPS 2024, §4.2) writes the update of a learned optimizer as

.. math::

    W \\leftarrow W - \\alpha\\,\\bigl(m + \\beta\\, f(W, \\nabla W, \\{m^{\\gamma_i}\\}, t)\\bigr)

with :math:`f` an equivariant network whose input channels are the weights, the gradient and
momenta at several decay rates, and :math:`m` a momentum. nfkit keeps that form with two
documented choices:

* the base direction :math:`m` is Adam's bias-corrected :math:`\\hat m / (\\sqrt{\\hat v} + \\epsilon)`
  (``base="adam"``, the default) or UNF's plain momentum (``base="momentum"``); both act entrywise, so
  either commutes with every permutation of the weights;
* the step size is a learned schedule :math:`\\alpha_t = \\exp(a_0 + \\sum_k a_k \\tanh(t/\\tau_k))`
  (scalars: invariant to every weight symmetry), so a learned optimizer can learn warm-up and decay.

The input channels of :math:`f` (:data:`INPUT_CHANNELS`) are each divided by their root mean square
over the whole network. That statistic is invariant to neuron permutations, so the features, and so
the update, are equivariant exactly when :math:`f` is.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.func import functional_call

from nfkit.errors import (
    InvalidOptionError,
    NfkitError,
    NonFiniteWeightsError,
    SpecMismatchError,
    UnknownNameError,
)
from nfkit.models.registry import available, equivariant
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.util.files import atomic_write_bytes

__all__ = ["UpdateRule", "PerParameterMLP", "INPUT_CHANNELS", "MOMENTUM_DECAYS", "TIMESCALES", "update_families"]

#: Decay rates γ of the momenta fed to f (the first one, 0.9, is also Adam's β₁).
MOMENTUM_DECAYS: tuple[float, ...] = (0.9, 0.5, 0.99, 0.999)
#: Adam's second-moment decay β₂ and ε.
SECOND_MOMENT_DECAY = 0.999
ADAM_EPS = 1e-8
#: Time scales τ of the step-count features tanh(t/τ) (in f's input and in the step-size schedule).
TIMESCALES: tuple[float, ...] = (10.0, 100.0, 1000.0)
#: f's input channels, in order.
INPUT_CHANNELS: tuple[str, ...] = (
    "weight",
    "gradient",
    *(f"momentum {g}" for g in MOMENTUM_DECAYS),
    "adam direction",
    *(f"tanh(t/{t:g})" for t in TIMESCALES),
)
BASES = ("adam", "momentum")
#: The update network that is not a registered family: an MLP applied to each entry alone (the
#: per-parameter learned optimizer of Metz et al. and the "DS" baseline of GradMetaNet, Table 6).
PER_PARAMETER = "per-parameter"
RULE_FORMAT = "nfkit-learned-optimizer-1"
SCHEDULE_GAIN = 10.0


def update_families() -> list[str]:
    """Names ``update=`` accepts: every registered family with an equivariant form, and ``"per-parameter"``."""
    return [*available("equivariant"), PER_PARAMETER]


class PerParameterMLP(nn.Module):
    """An MLP applied to every weight and bias entry on its own (channels in, channels out).

    It sees no other entry, so it commutes with every permutation of the entries, a far larger group
    than the network's: the baseline that ignores the weight-space structure.

    Shapes:
        features with ``C`` channels → features with ``out_channels`` channels, same spec.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: Sequence[int] = (32, 32)) -> None:
        super().__init__()
        widths = [in_channels, *hidden_channels]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], out_channels))
        self.net = nn.Sequential(*layers)

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        return features.map(lambda t: self.net(t.movedim(1, -1)).movedim(-1, 1))


class UpdateRule(nn.Module):
    """The meta-learned part of a :class:`~nfkit.optim.LearnedOptimizer`: f and the step-size schedule.

    One rule serves every network whose weight space has the same layer structure as ``spec``
    (number and kind of layers; with ``np`` or ``per-parameter`` any widths and input/output sizes).
    The network f is stored once; :meth:`direction` evaluates it on another spec through a shell
    model of that spec that reads these parameters.

    Args:
        spec: a weight space it will optimise (fixes the layer structure).
        family: ``"np"`` (default), any other equivariant family, or ``"per-parameter"``.
        hidden_channels: widths of f.
        base: ``"adam"`` or ``"momentum"`` (see the module docstring).
        learning_rate: the initial α (exp(a₀)).
        beta: the initial weight β of f's output.
    """

    def __init__(
        self,
        spec: WeightSpaceSpec,
        family: str = "np",
        hidden_channels: Sequence[int] = (16, 16),
        base: str = "adam",
        learning_rate: float = 3e-3,
        beta: float = 0.1,
    ) -> None:
        super().__init__()
        if not isinstance(spec, WeightSpaceSpec):
            raise SpecMismatchError(f"a learned optimizer reads MLP and CNN weight spaces, not {type(spec).__name__}")
        if family not in update_families():
            raise UnknownNameError(f"no update family {family!r}; available: {', '.join(update_families())}")
        if base not in BASES:
            raise InvalidOptionError(f"base must be one of {', '.join(BASES)}, not {base!r}")
        if not (learning_rate > 0 and math.isfinite(learning_rate)):
            raise InvalidOptionError(f"learning_rate must be a positive number, not {learning_rate}")
        if not math.isfinite(beta):
            raise InvalidOptionError(f"beta must be a finite number, not {beta}")
        hidden = [int(c) for c in hidden_channels]
        if not hidden or min(hidden) < 1:
            raise InvalidOptionError(f"hidden_channels must be positive widths, not {list(hidden_channels)}")
        self.spec = spec
        self.family = family
        self.hidden_channels = tuple(hidden)
        self.base = base
        self.network = self._build(spec)
        # the schedule's parameters are stored divided by SCHEDULE_GAIN: meta-training moves every parameter by
        # about the same amount per step, and the log step size must travel much further than f's weights
        self.log_learning_rate = nn.Parameter(torch.tensor(math.log(learning_rate) / SCHEDULE_GAIN))
        self.schedule = nn.Parameter(torch.zeros(len(TIMESCALES)))
        self.beta = nn.Parameter(torch.tensor(float(beta)))
        self._shells: dict[tuple[tuple[object, ...], ...], nn.Module] = {}

    def _build(self, spec: WeightSpaceSpec) -> nn.Module:
        channels = len(INPUT_CHANNELS)
        if self.family == PER_PARAMETER:
            return PerParameterMLP(channels, 1, self.hidden_channels)
        return equivariant(self.family, spec, out_channels=1, in_channels=channels, hidden_channels=list(self.hidden_channels))

    def config(self) -> dict[str, Any]:
        """What rebuilds this rule (with :meth:`from_config`): plain JSON-able values."""
        return {
            "spec": self.spec.to_dict(),
            "family": self.family,
            "hidden_channels": list(self.hidden_channels),
            "base": self.base,
        }

    @staticmethod
    def from_config(config: Mapping[str, Any]) -> UpdateRule:
        """The rule :meth:`config` describes, with fresh parameters."""
        return UpdateRule(
            WeightSpaceSpec.from_dict(config["spec"]),
            family=str(config["family"]),
            hidden_channels=[int(c) for c in config["hidden_channels"]],
            base=str(config["base"]),
        )

    def network_for(self, spec: WeightSpaceSpec) -> nn.Module:
        """f built for ``spec``, its parameters supplied by :meth:`direction` (cached per shape).

        Raises :class:`~nfkit.errors.SpecMismatchError` when ``spec`` has another layer structure, or
        sizes the family's parameters depend on.
        """
        if spec.shape_key == self.spec.shape_key or self.family == PER_PARAMETER:
            return self.network
        key = spec.shape_key
        if key not in self._shells:
            if spec.num_layers != self.spec.num_layers or [l.kind for l in spec.layers] != [l.kind for l in self.spec.layers]:
                raise SpecMismatchError(
                    f"this learned optimizer was built for {self.spec.describe()!r}; "
                    f"{spec.describe()!r} has a different layer structure"
                )
            shell = self._build(spec).to(self.beta.device, self.beta.dtype)
            mine = {n: tuple(p.shape) for n, p in self.network.named_parameters()}
            theirs = {n: tuple(p.shape) for n, p in shell.named_parameters()}
            if mine != theirs:
                raise SpecMismatchError(
                    f"the {self.family!r} update network built for {self.spec.describe()!r} has other parameter shapes "
                    f"than one for {spec.describe()!r}; {self.family!r} depends on layer sizes, use 'np' to move between widths"
                )
            self._shells[key] = shell
        return self._shells[key]

    def learning_rate(self, step: int) -> torch.Tensor:
        """α_t = exp(a₀ + Σ_k a_k tanh(t/τ_k)) for step ``t`` (counted from 1); a is stored divided by 10."""
        times = torch.tensor([math.tanh(step / tau) for tau in TIMESCALES], dtype=self.schedule.dtype, device=self.schedule.device)
        return torch.exp(SCHEDULE_GAIN * (self.log_learning_rate + (self.schedule * times).sum()))

    def direction(self, features: WeightSpaceFeatures, base: WeightSpaceFeatures) -> WeightSpaceFeatures:
        """``base + β f(features)``, one channel.

        Shapes:
            features: ``(1, len(INPUT_CHANNELS), …)``; base: ``(1, 1, …)``; result as ``base``.
        """
        shell = self.network_for(features.spec)
        if shell is self.network:
            learned = cast(WeightSpaceFeatures, self.network(features))
        else:
            parameters: dict[str, torch.Tensor] = dict(self.network.named_parameters())
            learned = cast(WeightSpaceFeatures, functional_call(shell, parameters, (features,)))
        return base + learned * self.beta

    def save(self, path: str | Path) -> None:
        """Write the rule (configuration and parameters) to ``path`` atomically; :meth:`load` reads it."""
        buffer = io.BytesIO()
        parameters = {k: v.detach().cpu() for k, v in self.state_dict().items()}
        torch.save({"format": RULE_FORMAT, "config": self.config(), "parameters": parameters}, buffer)
        atomic_write_bytes(Path(path), buffer.getvalue())

    @staticmethod
    def load(path: str | Path) -> UpdateRule:
        """The rule saved at ``path``; a missing, corrupt or foreign file is a one-line :class:`NfkitError`."""
        path = Path(path)
        if not path.is_file():
            raise NfkitError(f"{path} does not exist (or is not a file); give a learned optimizer written by nfkit optim meta-train")
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any unreadable file is the same user error
            raise NfkitError(f"{path} is not a readable learned-optimizer file ({type(error).__name__})") from None
        if not isinstance(saved, dict) or saved.get("format") != RULE_FORMAT:
            raise NfkitError(f"{path} is not a learned optimizer written by nfkit (no {RULE_FORMAT!r} marker)")
        try:
            rule = UpdateRule.from_config(saved["config"])
            rule.load_state_dict(saved["parameters"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            raise NfkitError(f"{path}: the learned optimizer does not load ({str(error).splitlines()[0]})") from None
        if not all(bool(torch.isfinite(p).all()) for p in rule.parameters()):
            raise NonFiniteWeightsError(f"{path}: the learned optimizer's parameters hold NaN or Inf")
        return rule
