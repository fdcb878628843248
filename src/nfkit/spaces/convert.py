"""Conversion between ``torch.nn`` modules / state dicts and weight spaces.

:func:`spec_of`, :func:`weights_of` and :func:`load_into` read any network, in the most specific view
that fits it: the dense view (:class:`WeightSpaceSpec`) for the MLPs and CNNs below, the transformer
view (:class:`TransformerSpec`) for the two transformer layouts, and otherwise the traced universal
description (:class:`UniversalSpec`, :mod:`nfkit.spaces.trace`): ResNets, GRUs, LSTMs, LoRA adapters,
encoder blocks inside larger networks.

Dense view, supported modules: ``nn.Sequential`` (nested allowed) of ``Linear`` and ``Conv2d``
layers (any kernel size, stride, padding, dilation; with or without bias),
elementwise activations (ReLU, LeakyReLU, Tanh, Sigmoid, GELU, SiLU and
:class:`nfkit.spaces.Sine`), ``Flatten``, global average pooling
(``AdaptiveAvgPool2d(1)``) between the conv and dense parts, ``Dropout`` and
``Identity``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Literal, TypeVar

import torch
from torch import nn

from nfkit.errors import SpecMismatchError, UnsupportedModuleError
from nfkit.spaces.activations import SUPPORTED_ACTIVATIONS, Activation
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import LayerSpec, WeightSpaceSpec
from nfkit.spaces.state_dict import from_state_dict, to_state_dict  # re-exported: they lived here
from nfkit.spaces.trace import universal_load_into, universal_spec_of, universal_weights_of
from nfkit.spaces.transformer_convert import (
    is_transformer,
    transformer_load_into,
    transformer_spec_of,
    transformer_weights_of,
)
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.transformer_spec import TransformerSpec
from nfkit.spaces.universal import UniversalSpec
from nfkit.spaces.universal_features import UniversalFeatures

__all__ = [
    "any_spec_of",
    "spec_of",
    "weights_of",
    "load_into",
    "layer_parameters",
    "module_from_spec",
    "from_state_dict",
    "to_state_dict",
    "SUPPORTED_MODULES",
]

#: What :func:`spec_of` understands, for error messages.
SUPPORTED_MODULES: tuple[str, ...] = (
    "Linear",
    "Conv2d",
    *(Activation.parse(a).module().__class__.__name__ for a in SUPPORTED_ACTIVATIONS),
    "Flatten",
    "AdaptiveAvgPool2d(1)",
    "Dropout",
    "Dropout2d",
    "Identity",
)

_IGNORED = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def _leaves(module: nn.Module, prefix: str) -> Iterator[tuple[str, nn.Module]]:
    for name, child in module.named_children():
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(child, nn.Sequential):
            yield from _leaves(child, path)
        else:
            yield path, child


def _unsupported(path: str, module: nn.Module, why: str = "") -> UnsupportedModuleError:
    reason = f": {why}" if why else ""
    return UnsupportedModuleError(
        f"nfkit cannot describe module {path!r} ({type(module).__name__}){reason}. "
        f"Supported: nn.Sequential of {', '.join(SUPPORTED_MODULES)}."
    )


def _pair(x: int | tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x) if isinstance(x, tuple) else (x, x)


def _two(x: int | tuple[int, ...]) -> tuple[int, int]:
    """A 2-D conv's size pair from a recorded size (a spec stores tuples; Conv2d wants exactly two)."""
    pair = tuple(x) if isinstance(x, tuple) else (x, x)
    if len(pair) != 2:
        raise SpecMismatchError(f"a Conv2d needs two sizes per option, got {x}")
    return (int(pair[0]), int(pair[1]))


def _layers_of(module: nn.Module) -> list[tuple[LayerSpec, nn.Linear | nn.Conv2d]]:
    if not isinstance(module, nn.Sequential):
        raise _unsupported("<root>", module, "the network must be an nn.Sequential")
    layers: list[tuple[LayerSpec, nn.Linear | nn.Conv2d]] = []
    activation_open = False  # the last layer can still receive an activation
    reduction: Literal["global_avg_pool", "flatten"] | None = None  # a pooling/flatten seen after conv layers
    for path, child in _leaves(module, ""):
        last = layers[-1][0] if layers else None
        if isinstance(child, (nn.Linear, nn.Conv2d)):
            if isinstance(child, nn.Conv2d):
                if last is not None and last.kind == "dense":
                    raise _unsupported(path, child, "a conv layer after a dense layer")
                if reduction is not None:
                    raise _unsupported(path, child, "pooling or flattening between conv layers")
                if child.groups != 1:
                    raise _unsupported(path, child, f"grouped convolution (groups={child.groups})")
                padding = child.padding if isinstance(child.padding, str) else _pair(child.padding)
                spec = LayerSpec(
                    "conv",
                    child.out_channels,
                    child.in_channels,
                    kernel=_pair(child.kernel_size),
                    bias=child.bias is not None,
                    stride=_pair(child.stride),
                    padding=padding,
                    dilation=_pair(child.dilation),
                    name=path,
                )
            else:
                input_reduction = None
                if last is not None and last.kind == "conv":
                    if reduction is None:
                        raise _unsupported(
                            path, child, "a Linear layer directly after a conv layer; add AdaptiveAvgPool2d(1) and Flatten"
                        )
                    input_reduction = reduction
                spec = LayerSpec(
                    "dense",
                    child.out_features,
                    child.in_features,
                    bias=child.bias is not None,
                    input_reduction=input_reduction,
                    name=path,
                )
            if last is not None and spec.n_in != last.n_out:
                raise SpecMismatchError(
                    f"module {path!r} takes {spec.n_in} inputs but the previous layer "
                    f"{last.name!r} gives {last.n_out}"
                )
            layers.append((spec, child))
            activation_open = True
            reduction = None
        elif (activation := Activation.from_module(child)) is not None:
            if last is None:
                raise _unsupported(path, child, "an activation before the first layer")
            if not activation_open:
                raise _unsupported(path, child, "two activations (or pooling then an activation) in a row")
            layers[-1] = (replace(last, activation=activation), layers[-1][1])
            activation_open = False
        elif isinstance(child, nn.AdaptiveAvgPool2d):
            size = child.output_size
            if (tuple(size) if isinstance(size, tuple) else (size, size)) != (1, 1) or last is None or last.kind != "conv" or reduction is not None:
                raise _unsupported(path, child, "only global average pooling (output size 1) after conv layers")
            reduction = "global_avg_pool"
            activation_open = False
        elif isinstance(child, nn.Flatten):
            if last is not None and last.kind == "dense":
                raise _unsupported(path, child, "Flatten after a dense layer")
            if last is not None and reduction is None:
                reduction = "flatten"  # conv maps must then be 1×1 for the Linear layer's sizes to fit
            activation_open = False
        elif isinstance(child, _IGNORED):
            continue
        else:
            raise _unsupported(path, child)
    if not layers:
        raise _unsupported("<root>", module, "it contains no Linear or Conv2d layer")
    if layers[-1][0].kind == "conv":
        raise _unsupported(layers[-1][0].name, layers[-1][1], "the network must end in a Linear layer")
    return layers


def _dense_layers(module: nn.Module) -> list[tuple[LayerSpec, nn.Linear | nn.Conv2d]] | None:
    """The dense view's layers, or ``None`` when the module is not a plain MLP/CNN chain."""
    try:
        return _layers_of(module)
    except UnsupportedModuleError:
        return None


def spec_of(module: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...] | None = None
            ) -> WeightSpaceSpec | TransformerSpec | UniversalSpec:
    """The weight-space spec of any network, in the most specific view that fits it.

    * an ``nn.Sequential`` MLP or CNN (see the module docstring): a :class:`~nfkit.spaces.WeightSpaceSpec`;
    * ``nn.TransformerEncoderLayer``, ``nn.TransformerEncoder`` or
      :class:`nfkit.nets.transformer.SmallTransformer`: a :class:`~nfkit.spaces.TransformerSpec`;
    * anything else: the traced :class:`~nfkit.spaces.UniversalSpec` (:func:`universal_spec_of`; ResNets
      with batch norms, GRUs, LSTMs, LoRA adapters, encoders with heads). ``example`` (inputs the module
      accepts) tells the tracer tensor ranks that indexing or a ``BatchNorm1d`` needs.

    Raises :class:`~nfkit.errors.UnsupportedModuleError` naming the first operation no view can
    describe, and :class:`~nfkit.errors.SpecMismatchError` for layers that do not fit together.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        ...                     nn.Flatten(), nn.Linear(16, 10))
        >>> spec_of(net).describe()
        'conv 1→16 3×3 +bias relu | dense 16→10 +bias'
        >>> import torch
        >>> with_norm = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
        >>> spec_of(with_norm, example=torch.randn(5, 3)).describe()  # traced: the norm's statistics are tensors too
        '8 tensors, 42 entries; sets 0 (4, permutation)'
    """
    if is_transformer(module):
        return transformer_spec_of(module)
    layers = _dense_layers(module)
    if layers is not None:
        return WeightSpaceSpec(tuple(spec for spec, _ in layers))
    return universal_spec_of(module, example)


def any_spec_of(module: nn.Module) -> WeightSpaceSpec | TransformerSpec | UniversalSpec:
    """The same as :func:`spec_of`, which reads every network (kept for earlier callers)."""
    return spec_of(module)


def weights_of(module: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...] | None = None
               ) -> WeightSpaceFeatures | TransformerFeatures | UniversalFeatures:
    """The module's weights as features of :func:`spec_of`'s view, batch 1 and one channel (detached copies).

    Transformers give :class:`~nfkit.spaces.TransformerFeatures` (shapes in :mod:`nfkit.spaces.transformer_spec`),
    other traced networks :class:`~nfkit.spaces.UniversalFeatures` (one tensor per parameter, its own shape).

    Shapes: weights ``(1, 1, n_i, n_{i-1}, *kernel)``, biases ``(1, 1, n_i)`` (zeros for bias-free layers).
    Raises :class:`~nfkit.errors.NonFiniteWeightsError` if any parameter is NaN or Inf.

    Example:
        >>> from torch import nn
        >>> f = weights_of(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2, bias=False)))
        >>> [tuple(w.shape) for w in f.weights], f.biases[1].abs().sum().item()
        ([(1, 1, 4, 3), (1, 1, 2, 4)], 0.0)
    """
    if is_transformer(module):
        return transformer_weights_of(module)
    layers = _dense_layers(module)
    if layers is None:
        return universal_weights_of(module, universal_spec_of(module, example))
    spec = WeightSpaceSpec(tuple(s for s, _ in layers))
    weights = []
    biases = []
    for layer, child in layers:
        w = child.weight.detach().clone()
        b = child.bias.detach().clone() if child.bias is not None else w.new_zeros(layer.n_out)
        weights.append(w[None, None])
        biases.append(b[None, None])
    return WeightSpaceFeatures(spec, weights, biases).check_finite(f"{type(module).__name__} parameters")


def layer_parameters(module: nn.Module) -> list[tuple[nn.Parameter, nn.Parameter | None]]:
    """The module's ``(weight, bias)`` parameters in the order of its spec's layers (``None`` for no bias).

    These are the live parameters (not copies): what an optimizer of the weight space updates.
    Raises :class:`~nfkit.errors.UnsupportedModuleError` as :func:`spec_of` does.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, bias=False))
        >>> [(tuple(w.shape), b is None) for w, b in layer_parameters(net)]
        [((4, 3), False), ((2, 4), True)]
    """
    if is_transformer(module):
        raise UnsupportedModuleError(f"layer_parameters reads MLPs and CNNs; {type(module).__name__} is a transformer")
    pairs: list[tuple[nn.Parameter, nn.Parameter | None]] = []
    for i, (layer, child) in enumerate(_layers_of(module)):
        weight, bias = child._parameters.get("weight"), child._parameters.get("bias")
        if not isinstance(weight, nn.Parameter):
            raise UnsupportedModuleError(
                f"layer {i + 1} ({layer.name!r}) computes its weight from other tensors (a parametrization); "
                f"remove it first"
            )
        pairs.append((weight, bias if isinstance(bias, nn.Parameter) else None))
    return pairs


def load_into(module: ModuleT, features: WeightSpaceFeatures | TransformerFeatures | UniversalFeatures,
              index: int | None = None) -> ModuleT:
    """Copy one network's weights from ``features`` into ``module`` in place, and return it.

    Args:
        module: a module whose :func:`spec_of` has the same shapes as ``features.spec``
            (:class:`~nfkit.spaces.UniversalFeatures`: any module with parameters of those names and sizes,
            an MLP's traced description included).
        features: one channel; batch 1, or pick the network with ``index``.
        index: which batch item to load (required when the batch has more than one network).

    Round trip: ``weights_of(load_into(m, f))`` equals ``f`` exactly (same dtype).

    Raises :class:`~nfkit.errors.SpecMismatchError` for other shapes, more than one channel,
    or a non-zero bias for a layer without bias; :class:`~nfkit.errors.NonFiniteWeightsError`
    for NaN or Inf.
    """
    if isinstance(features, UniversalFeatures):  # the traced description fits every module, MLPs included
        return universal_load_into(module, features, index)
    if is_transformer(module):
        if not isinstance(features, TransformerFeatures):
            raise SpecMismatchError(f"{type(module).__name__} needs TransformerFeatures, got {type(features).__name__}")
        transformer_load_into(module, features, index)
        return module
    if not isinstance(features, WeightSpaceFeatures):
        raise SpecMismatchError(f"{type(module).__name__} needs WeightSpaceFeatures, got {type(features).__name__}")
    layers = _dense_layers(module)
    if layers is None:
        raise SpecMismatchError(
            f"{type(module).__name__} is not an MLP/CNN chain; its weights are UniversalFeatures (weights_of), "
            f"not WeightSpaceFeatures"
        )
    spec = WeightSpaceSpec(tuple(s for s, _ in layers))
    spec.require_compatible(features.spec, "the features")
    if features.channels != 1:
        raise SpecMismatchError(f"load_into needs features with one channel, got {features.channels}")
    if index is None:
        if features.batch_size != 1:
            raise SpecMismatchError(
                f"the features hold {features.batch_size} networks; pass index= to choose which one to load"
            )
        index = 0
    one = features[index].check_finite("features to load")
    for i, (layer, child) in enumerate(layers):
        # weight_norm, spectral_norm and parametrizations compute .weight from other tensors on every
        # forward: a copy into .weight would be silently overwritten, so refuse instead
        reparametrised = [n for n in ("weight", "bias") if getattr(child, n, None) is not None and n not in child._parameters]
        if reparametrised:
            raise UnsupportedModuleError(
                f"layer {i + 1} ({layer.name!r}) computes its {' and '.join(reparametrised)} from other tensors "
                f"(weight_norm, spectral_norm or a parametrization); load_into cannot write it: remove the "
                f"reparametrisation first (torch.nn.utils.parametrize.remove_parametrizations or remove_weight_norm)"
            )
    for i, (layer, child) in enumerate(layers):
        w = one.weights[i][0, 0]
        b = one.biases[i][0, 0]
        if child.bias is None and bool((b != 0).any()):
            raise SpecMismatchError(
                f"layer {i + 1} ({layer.name!r}) has no bias, but the features give it a non-zero bias"
            )
        with torch.no_grad():
            child.weight.copy_(w)
            if child.bias is not None:
                child.bias.copy_(b)
    return module


def module_from_spec(spec: WeightSpaceSpec) -> nn.Sequential:
    """A fresh ``nn.Sequential`` with the architecture ``spec`` describes (the inverse of :func:`spec_of`).

    Conv layers get their stride, padding and dilation; a dense layer after conv layers gets the
    recorded global average pooling or flatten. ``spec_of(module_from_spec(spec)) == spec``.

    Example:
        >>> spec = WeightSpaceSpec.mlp([2, 8, 1], "tanh")
        >>> spec_of(module_from_spec(spec)) == spec
        True
    """
    modules: list[nn.Module] = []
    for layer in spec.layers:
        if layer.kind == "conv":
            modules.append(
                nn.Conv2d(
                    layer.n_in, layer.n_out, _two(layer.kernel), stride=_two(layer.stride or 1),
                    padding=layer.padding if isinstance(layer.padding, str) else _two(layer.padding or 0),
                    dilation=_two(layer.dilation or 1), bias=layer.bias,
                )
            )
        else:
            if layer.input_reduction == "global_avg_pool":
                modules.append(nn.AdaptiveAvgPool2d(1))
            if layer.input_reduction is not None:
                modules.append(nn.Flatten())
            modules.append(nn.Linear(layer.n_in, layer.n_out, bias=layer.bias))
        if layer.activation is not None and layer.activation.name != "identity":
            modules.append(layer.activation.module())
    return nn.Sequential(*modules)
