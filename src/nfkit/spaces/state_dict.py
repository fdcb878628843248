"""Dense weight spaces to and from state dicts: ``{name}.weight`` / ``{name}.bias`` per layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from nfkit.errors import SpecMismatchError
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["from_state_dict", "to_state_dict"]


def from_state_dict(
    state_dict: Mapping[str, torch.Tensor], spec: WeightSpaceSpec, names: Sequence[str] | None = None
) -> WeightSpaceFeatures:
    """Features (batch 1, one channel) from a state dict holding ``{name}.weight`` and ``{name}.bias``.

    Args:
        state_dict: parameter tensors.
        spec: the weight space the state dict belongs to.
        names: the module path of each layer, in order. By default, the ``*.weight`` keys
            in the state dict's order.
    """
    if names is None:
        names = [k[: -len(".weight")] for k in state_dict if k.endswith(".weight")]
    if len(names) != spec.num_layers:
        raise SpecMismatchError(
            f"the state dict has {len(names)} '.weight' entries ({', '.join(names) or 'none'}); "
            f"the spec has {spec.num_layers} layers"
        )
    weights = []
    biases = []
    for i, (name, layer) in enumerate(zip(names, spec.layers)):
        key = f"{name}.weight"
        if key not in state_dict:
            raise SpecMismatchError(f"the state dict has no {key!r} (keys: {', '.join(state_dict)})")
        w = torch.as_tensor(state_dict[key]).detach()
        if tuple(w.shape) != layer.weight_shape:
            raise SpecMismatchError(f"{key!r} has shape {tuple(w.shape)}; layer {i + 1} expects {layer.weight_shape}")
        bias_key = f"{name}.bias"
        if layer.bias:
            if bias_key not in state_dict:
                raise SpecMismatchError(f"the state dict has no {bias_key!r}, but layer {i + 1} has a bias")
            b = torch.as_tensor(state_dict[bias_key]).detach()
            if tuple(b.shape) != (layer.n_out,):
                raise SpecMismatchError(f"{bias_key!r} has shape {tuple(b.shape)}; expected ({layer.n_out},)")
        else:
            if bias_key in state_dict:
                raise SpecMismatchError(f"the state dict has {bias_key!r}, but layer {i + 1} of the spec has no bias")
            b = w.new_zeros(layer.n_out)
        weights.append(w.clone()[None, None])
        biases.append(b.clone()[None, None])
    return WeightSpaceFeatures(spec, weights, biases).check_finite("state dict")


def to_state_dict(features: WeightSpaceFeatures, names: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
    """A state dict ``{name}.weight`` / ``{name}.bias`` for one network (batch 1, one channel).

    ``names`` default to the layer names recorded by :func:`~nfkit.spaces.spec_of`, else ``"0", "1", …``.
    Bias-free layers get no bias entry.
    """
    spec = features.spec
    if features.batch_size != 1 or features.channels != 1:
        raise SpecMismatchError(
            f"to_state_dict needs batch 1 and one channel, got batch {features.batch_size}, "
            f"channels {features.channels}"
        )
    if names is None:
        names = [layer.name or str(i) for i, layer in enumerate(spec.layers)]
    if len(names) != spec.num_layers:
        raise SpecMismatchError(f"got {len(names)} names for {spec.num_layers} layers")
    out: dict[str, torch.Tensor] = {}
    for name, layer, w, b in zip(names, spec.layers, features.weights, features.biases):
        out[f"{name}.weight"] = w[0, 0].clone()
        if layer.bias:
            out[f"{name}.bias"] = b[0, 0].clone()
    return out
