"""Conversion between transformer modules and :class:`TransformerFeatures`.

Supported: ``nn.TransformerEncoderLayer`` (its ``nn.MultiheadAttention``'s packed
``in_proj_weight`` is split into per-head W_Q, W_K, W_V), ``nn.TransformerEncoder`` of such
layers without a final norm, and :class:`nfkit.nets.transformer.SmallTransformer` (the Small
Transformer Zoo layout, with embedding and classifier head). PyTorch's layer always adds
residuals; whether LayerNorms are affine is read from the module, never assumed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nfkit.errors import SpecMismatchError, UnsupportedModuleError
from nfkit.spaces.spec import LayerSpec, WeightSpaceSpec
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.transformer_spec import AttentionBlockSpec, TransformerSpec
from nfkit.nets.transformer import EncoderBlock, SmallTransformer

__all__ = ["is_transformer", "transformer_spec_of", "transformer_weights_of", "transformer_load_into", "TRANSFORMER_MODULES"]

TRANSFORMER_MODULES = ("TransformerEncoderLayer", "TransformerEncoder (norm=None)", "nfkit SmallTransformer")

# name → (parameter or None, to nfkit layout, back to the parameter's layout)
Slot = tuple[torch.Tensor | None, Callable[[torch.Tensor], torch.Tensor], Callable[[torch.Tensor], torch.Tensor]]


def is_transformer(module: nn.Module) -> bool:
    """Whether ``module`` is one of the transformer modules nfkit converts."""
    return type(module) in (nn.TransformerEncoderLayer, nn.TransformerEncoder, SmallTransformer)


def _projection_slots(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, h: int) -> dict[str, Slot]:
    """Per-head XW views of ``nn.Linear``-layout weights: ``(h·d, D) ↔ (h, D, d)``, ``(D, h·d_v) ↔ (h, d_v, D)``."""
    d_model = q.shape[1]

    def heads_in(p: torch.Tensor) -> Slot:
        d = p.shape[0] // h
        return p, lambda w: w.reshape(h, d, d_model).transpose(1, 2), lambda x: x.transpose(1, 2).reshape(h * d, d_model)

    d_v = o.shape[1] // h
    out: Slot = (o, lambda w: w.t().reshape(h, d_v, d_model), lambda x: x.reshape(h * d_v, d_model).t())
    return {"query": heads_in(q), "key": heads_in(k), "value": heads_in(v), "output": out}


def _bias_slot(p: torch.Tensor | None, shape: tuple[int, ...]) -> Slot:
    return p, lambda b: b.reshape(shape), lambda x: x.reshape(-1)


def _plain(p: torch.Tensor | None) -> Slot:
    return p, lambda t: t, lambda t: t


def _norm_affine(norms: tuple[nn.LayerNorm, nn.LayerNorm], path: str) -> bool:
    affine = [n.weight is not None for n in norms] + [n.bias is not None for n in norms]
    if any(affine) and not all(affine):
        raise UnsupportedModuleError(f"{path}: LayerNorms with a weight but no bias (or only one affine norm) are not supported")
    return all(affine)


def _activation_name(fn: object) -> str:
    return getattr(fn, "__name__", None) or type(fn).__name__.lower()


def _block(module: nn.Module, path: str) -> tuple[AttentionBlockSpec, dict[str, Slot]]:
    if type(module) is nn.TransformerEncoderLayer:
        mha = module.self_attn
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise UnsupportedModuleError(f"{path}: MultiheadAttention with kdim/vdim, add_bias_kv or add_zero_attn is not supported")
        d, h = mha.embed_dim, mha.num_heads
        dk = dv = d // h
        w = mha.in_proj_weight
        slots = _projection_slots(w[:d], w[d : 2 * d], w[2 * d :], mha.out_proj.weight, h)
        b = mha.in_proj_bias
        slots.update({
            "query_bias": _bias_slot(None if b is None else b[:d], (h, dk)),
            "key_bias": _bias_slot(None if b is None else b[d : 2 * d], (h, dk)),
            "value_bias": _bias_slot(None if b is None else b[2 * d :], (h, dk)),
            "output_bias": _plain(mha.out_proj.bias),
        })
        attention_bias = b is not None
        if attention_bias != (mha.out_proj.bias is not None):
            raise UnsupportedModuleError(f"{path}: in- and out-projection must both have biases or neither")
        residual, norm_first, activation = True, module.norm_first, _activation_name(module.activation)
        fc1, fc2 = module.linear1, module.linear2
    elif type(module) is EncoderBlock:
        att = module.attention
        h, d, dk, dv = att.heads, att.queries.in_features, att.d_k, att.d_v
        slots = _projection_slots(att.queries.weight, att.keys.weight, att.values.weight, att.out_projection.weight, h)
        slots.update({
            "query_bias": _bias_slot(att.queries.bias, (h, att.d_k)),
            "key_bias": _bias_slot(att.keys.bias, (h, att.d_k)),
            "value_bias": _bias_slot(att.values.bias, (h, att.d_v)),
            "output_bias": _plain(att.out_projection.bias),
        })
        attention_bias = att.queries.bias is not None
        residual, norm_first, activation = module.residual, module.norm_first, module.activation
        fc1, fc2 = module.fc1, module.fc2
    else:
        raise UnsupportedModuleError(f"{path}: {type(module).__name__} is not a supported encoder block ({', '.join(TRANSFORMER_MODULES)})")
    if (fc1.bias is None) != (fc2.bias is None):
        raise UnsupportedModuleError(f"{path}: both feed-forward layers must have biases, or neither")
    affine = _norm_affine((module.norm1, module.norm2), path)
    slots.update({"ffn_in": _plain(fc1.weight), "ffn_in_bias": _plain(fc1.bias), "ffn_out": _plain(fc2.weight), "ffn_out_bias": _plain(fc2.bias)})
    if affine:
        slots.update({
            "norm1_weight": _plain(module.norm1.weight), "norm1_bias": _plain(module.norm1.bias),
            "norm2_weight": _plain(module.norm2.weight), "norm2_bias": _plain(module.norm2.bias),
        })
    spec = AttentionBlockSpec(
        d, h, dk, dv, fc1.out_features,
        attention_bias=attention_bias, ffn_bias=fc1.bias is not None, norm_affine=affine, residual=residual,
        norm_first=norm_first, activation=activation, name=path,
    )
    return spec, slots


def _parts(module: nn.Module) -> tuple[TransformerSpec, dict[str, Slot]]:
    embedding = head = None
    slots: dict[str, Slot] = {}
    blocks: list[tuple[str, nn.Module]]
    if type(module) is nn.TransformerEncoderLayer:
        blocks = [("", module)]
    elif type(module) is nn.TransformerEncoder:
        if module.norm is not None:
            raise UnsupportedModuleError("nn.TransformerEncoder with a final norm is not supported; pass norm=None")
        blocks = [(f"layers.{l}", layer) for l, layer in enumerate(module.layers)]
    elif type(module) is SmallTransformer:
        blocks = [(f"encoder.{l}", block) for l, block in enumerate(module.encoder)]
        emb = module.embedding
        d = int(module.norm.normalized_shape[0])
        if isinstance(emb, nn.Conv2d):
            if isinstance(emb.padding, str):
                raise UnsupportedModuleError(f"a patch embedding with padding={emb.padding!r} is not supported; give sizes")
            layer = LayerSpec("conv", d, emb.in_channels, tuple(emb.kernel_size), bias=emb.bias is not None,
                              stride=tuple(emb.stride), padding=tuple(emb.padding), dilation=tuple(emb.dilation), name="embedding")
            slots.update({"embedding.W1": _plain(emb.weight), "embedding.b1": _plain(emb.bias)})
        else:  # a token embedding is the dense map of one-hot tokens: W = table.T, no bias
            assert isinstance(emb, nn.Embedding)
            layer = LayerSpec("dense", d, emb.num_embeddings, bias=False, name="embedding")
            table: torch.Tensor = emb.weight
            slots.update({"embedding.W1": (table, lambda t: t.t(), lambda x: x.t()), "embedding.b1": _plain(None)})
        embedding = WeightSpaceSpec((layer,))
        c = module.classifier
        head = WeightSpaceSpec.mlp([c.fc1.in_features, c.fc1.out_features, c.fc2.out_features], "relu")
        slots.update({f"head.{k}": _plain(p) for k, p in (("W1", c.fc1.weight), ("b1", c.fc1.bias), ("W2", c.fc2.weight), ("b2", c.fc2.bias))})
    else:
        raise UnsupportedModuleError(f"{type(module).__name__} is not a supported transformer ({', '.join(TRANSFORMER_MODULES)})")
    specs = []
    for l, (path, block) in enumerate(blocks):
        spec, block_slots = _block(block, path)
        specs.append(spec)
        slots.update({f"blocks.{l}.{k}": v for k, v in block_slots.items()})
    return TransformerSpec(tuple(specs), embedding, head), slots


def transformer_spec_of(module: nn.Module) -> TransformerSpec:
    """The :class:`TransformerSpec` of a supported transformer module (see the module docstring)."""
    return _parts(module)[0]


def transformer_weights_of(module: nn.Module) -> TransformerFeatures:
    """The module's weights as features with batch 1 and one channel (detached copies; absent biases zero)."""
    spec, slots = _parts(module)
    shapes = spec.tensor_shapes()
    named = {}
    for name, shape in shapes.items():
        param, to_nfkit, _ = slots[name]
        t = to_nfkit(param.detach()).clone() if param is not None else torch.zeros(shape, dtype=_dtype(slots))
        named[name] = t[None, None]
    return TransformerFeatures(spec, named).check_finite(f"{type(module).__name__} parameters")


def _dtype(slots: dict[str, Slot]) -> torch.dtype:
    return next(p for p, _, _ in slots.values() if p is not None).dtype


def transformer_load_into(module: nn.Module, features: TransformerFeatures, index: int | None = None) -> nn.Module:
    """Copy one network from ``features`` into ``module`` in place (see :func:`nfkit.spaces.load_into`)."""
    spec, slots = _parts(module)
    if not isinstance(features, TransformerFeatures):
        raise SpecMismatchError(f"a transformer needs TransformerFeatures, got {type(features).__name__}")
    spec.require_compatible(features.spec, "the features")
    if features.channels != 1:
        raise SpecMismatchError(f"load_into needs features with one channel, got {features.channels}")
    if index is None:
        if features.batch_size != 1:
            raise SpecMismatchError(f"the features hold {features.batch_size} networks; pass index= to choose which one to load")
        index = 0
    one = features[index].check_finite("features to load")
    for name, tensor in one.named.items():
        param, _, from_nfkit = slots[name]
        if param is None:
            if bool((tensor != 0).any()):
                raise SpecMismatchError(f"{name}: the module has no such bias, but the features give it a non-zero value")
            continue
        with torch.no_grad():
            param.copy_(from_nfkit(tensor[0, 0]))
    return module
