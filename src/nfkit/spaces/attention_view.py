"""The attention blocks inside a traced network, seen as transformer weight spaces: :class:`AttentionView`.

Transformer-NFN (Tran et al., ICLR 2025, Sec. 3–4) is built for one layout: per block ``W_Q, W_K, W_V
(h, D, d)``, ``W_O (h, d, D)``, the feed-forward and the norms (:class:`~nfkit.spaces.AttentionBlockSpec`).
A traced network (:func:`~nfkit.spaces.universal_spec_of`) holds the same tensors of each attention block
among everything else (a stem, an MLP head, other blocks). This view finds them and splits the features
in two:

* every ``nn.TransformerEncoderLayer`` ``P``, read from ``P.self_attn.in_proj_weight[q|k|v]`` ``(h, d, D)``,
  ``P.self_attn.out_proj.weight`` ``(D, h, d)``, ``P.linear1``/``P.linear2`` and ``P.norm1``/``P.norm2``,
  as the features of a one-block :class:`~nfkit.spaces.TransformerSpec` (``W_Q = in_proj[q]ᵀ`` per head:
  the paper's row-vector convention; biases a layer lacks are zeros, as nfkit stores them);
* every other ``nn.MultiheadAttention`` (a block written by hand, as ViT code does) with the feed-forward
  that follows it: the first pair of Linear layers ``D → H → D`` on its stream after it, before the next
  attention, whose hidden neurons ``H`` no other tensor carries. Its norms are not part of the block (the
  graph does not say which norm plays which role); they stay with the rest;
* the *rest*: the other tensors, as a :class:`~nfkit.spaces.UniversalSpec` of their own, in which the
  sets they share with a block (the residual stream ``D``) are fixed axes: Transformer-NFN does not
  permute ``D``, so a model on both parts is invariant only to what fixes it.

The group both parts respect (:meth:`AttentionView.group`): per block its head permutations with one
``GL(d)`` per head on query/key and on value/output, and its feed-forward permutations (the traced
sets ``P.self_attn.heads``, ``P.self_attn.query_key``, ``P.self_attn.value_output``, ``P.linear1``),
and the permutations of the sets only the rest carries. The universal group's action on a block's
tensors is the transformer group's: ``in_proj[q] ↦ G in_proj[q]``, ``in_proj[k] ↦ G⁻ᵀ in_proj[k]`` is
``W_Q ↦ W_Q A``, ``W_K ↦ W_K A⁻ᵀ`` with ``A = Gᵀ``, and likewise for values and outputs.

Shapes:
    :class:`~nfkit.spaces.UniversalFeatures` ``(B, C, …)`` → per block :class:`~nfkit.spaces.TransformerFeatures`
    ``(B, C, …)`` and the rest's :class:`~nfkit.spaces.UniversalFeatures` ``(B, C, …)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import final

import torch

from nfkit.errors import UnsupportedArchitectureError
from nfkit.groups.universal import UniversalGroup
from nfkit.spaces.transformer_features import TransformerFeatures
from nfkit.spaces.transformer_spec import AttentionBlockSpec, TransformerSpec
from nfkit.spaces.universal import TensorSpec, UniversalSpec
from nfkit.spaces.universal_features import UniversalFeatures

__all__ = ["AttentionView", "EncoderLayerTensors"]

_ATTENTION = ".self_attn"


@final
@dataclass(frozen=True)
class EncoderLayerTensors:
    """Where one encoder layer's tensors sit in the traced spec.

    Attributes:
        path: the layer's module path ``P``.
        spec: its one-block transformer weight space.
        sets: the traced sets internal to it (heads, query/key, value/output, feed-forward hidden).
        sources: transformer tensor name (``"blocks.0.query"``) → the traced tensor's name, or ``""``
            for a bias the layer lacks.
    """

    path: str
    spec: TransformerSpec
    sets: tuple[str, ...]
    sources: tuple[tuple[str, str], ...]


def _projections(names: set[str], a: str) -> dict[str, str] | None:
    """The traced tensors of attention ``a``'s projections, by transformer name: an ``nn.MultiheadAttention``
    (``in_proj_weight[q|k|v]``, ``out_proj``) or nfkit's ``SelfAttention`` (``queries``, ``keys``, ``values``,
    ``out_projection``); both traced as ``(h, d, D)`` and ``(D, h, d)``. ``None`` for neither."""
    mha = {"query": f"{a}.in_proj_weight[q]", "key": f"{a}.in_proj_weight[k]", "value": f"{a}.in_proj_weight[v]",
           "output": f"{a}.out_proj.weight", "query_bias": f"{a}.in_proj_bias[q]", "key_bias": f"{a}.in_proj_bias[k]",
           "value_bias": f"{a}.in_proj_bias[v]", "output_bias": f"{a}.out_proj.bias"}
    own = {"query": f"{a}.queries.weight", "key": f"{a}.keys.weight", "value": f"{a}.values.weight",
           "output": f"{a}.out_projection.weight", "query_bias": f"{a}.queries.bias", "key_bias": f"{a}.keys.bias",
           "value_bias": f"{a}.values.bias", "output_bias": f"{a}.out_projection.bias"}
    return next((p for p in (mha, own) if p["query"] in names), None)


def _one_block(spec: UniversalSpec, path: str, attention: str, projections: dict[str, str], ffn: tuple[str, str],
               norms: tuple[str, str] | None) -> EncoderLayerTensors:
    """The one-block transformer space of ``attention`` (its traced ``projections``, :func:`_projections`), the
    feed-forward Linear pair ``ffn`` (their module paths) and, if given, the two LayerNorms ``norms``."""
    names = {t.name for t in spec.tensors}
    a = attention
    heads, d_k, d_model = spec.tensor(projections["query"]).shape
    d_v = spec.tensor(projections["value"]).shape[1]
    d_ff = spec.tensor(f"{ffn[0]}.weight").shape[0]
    attention_bias = projections["query_bias"] in names
    ffn_bias = f"{ffn[0]}.bias" in names
    norm_affine = norms is not None and f"{norms[0]}.weight" in names
    # the transformer-NFN layers read shapes, biases and whether the stream is permutable (never: the view
    # fixes it); norm placement and activation do not enter them
    block = AttentionBlockSpec(d_model, heads, d_k, d_v, d_ff, attention_bias=attention_bias, ffn_bias=ffn_bias,
                               norm_affine=norm_affine, residual=True, name=path)
    sources = {
        **projections,
        "ffn_in": f"{ffn[0]}.weight", "ffn_in_bias": f"{ffn[0]}.bias",
        "ffn_out": f"{ffn[1]}.weight", "ffn_out_bias": f"{ffn[1]}.bias",
    }
    if norms is not None:
        sources.update({"norm1_weight": f"{norms[0]}.weight", "norm1_bias": f"{norms[0]}.bias",
                        "norm2_weight": f"{norms[1]}.weight", "norm2_bias": f"{norms[1]}.bias"})
    one = TransformerSpec((block,))
    pairs = []
    for name in one.tensor_shapes():
        source = sources[name.removeprefix("blocks.0.")]
        if source not in names:
            if not name.endswith("_bias"):
                raise UnsupportedArchitectureError(f"attention block {path}: no tensor {source}")
            source = ""  # a bias the layer does not have (a LayerNorm without bias included)
        pairs.append((name, source))
    sets = (f"{a}.heads", f"{a}.query_key", f"{a}.value_output", spec.tensor(f"{ffn[0]}.weight").axes[0].set)  # type: ignore[union-attr]
    return EncoderLayerTensors(path, one, sets, tuple(pairs))


def _encoder_layer(spec: UniversalSpec, path: str, projections: dict[str, str]) -> EncoderLayerTensors:
    """An ``nn.TransformerEncoderLayer`` at ``path``: its own attention, feed-forward and norms."""
    return _one_block(spec, path, path + _ATTENTION, projections, (f"{path}.linear1", f"{path}.linear2"),
                      (f"{path}.norm1", f"{path}.norm2"))


def _module_of(tensor: str) -> str:
    return tensor.rpartition(".")[0]


def _feedforward_after(spec: UniversalSpec, projections: dict[str, str], start: int, until: int) -> tuple[str, str] | None:
    """The first Linear pair ``D → H → D`` among tensors ``start:until`` that reads the attention's stream
    (its input, or its output where the block has no residual) and whose hidden set ``H`` no other tensor
    carries: the block's feed-forward. ``None`` if there is none."""
    query, output = spec.tensor(projections["query"]), spec.tensor(projections["output"])
    # None: a fixed axis (the network's input, or a stream a fixed table is added to)
    streams = {None if a is None else a.set for a in (query.axes[-1], output.axes[0])}
    d_model = query.shape[-1]
    after = spec.tensors[start:until]

    for first in after:
        if not first.name.endswith(".weight") or len(first.axes) != 2 or first.axes[0] is None or first.shape[1] != d_model:
            continue
        hidden = first.axes[0].set
        reads = first.axes[1]
        if first.axes[0].role != "out" or (None if reads is None else reads.set) not in streams or hidden in streams:
            continue
        if reads is not None and reads.role != "in":
            continue
        second = next((t for t in after if t.name.endswith(".weight") and len(t.axes) == 2 and t.shape[0] == d_model
                       and t.axes[1] is not None and (t.axes[1].set, t.axes[1].role) == (hidden, "in") and (t.axes[0] is None or t.axes[0].role == "out")), None)
        if second is None:
            continue
        pair = (_module_of(first.name), _module_of(second.name))
        own = {first.name, second.name, f"{pair[0]}.bias"}
        if any(a is not None and a.set == hidden for t in spec.tensors if t.name not in own for a in t.axes):
            continue  # the hidden neurons reach further than the pair: not a feed-forward block
        return pair
    return None


def _to_transformer_layout(name: str, x: torch.Tensor) -> torch.Tensor:
    if name.endswith(("query", "key", "value")):  # (B, C, h, d, D) → (B, C, h, D, d)
        return x.transpose(-1, -2)
    if name.endswith("output"):  # (B, C, D, h, d) → (B, C, h, d, D)
        return x.permute(0, 1, 3, 4, 2)
    return x


@final
class AttentionView:
    """The attention blocks of a traced spec as transformer weight spaces, and the rest (module docstring).

    Args:
        spec: a traced weight space with at least one attention block (an ``nn.TransformerEncoderLayer``,
            or an ``nn.MultiheadAttention`` followed by a feed-forward Linear pair).

    Attributes:
        layers: per attention block, its :class:`EncoderLayerTensors`.
        rest: the other tensors' space, shared sets fixed; ``None`` when there are none.

    Raises:
        UnsupportedArchitectureError: no attention, or attention with no feed-forward pair after it.

    Example:
        >>> from nfkit.nets.architectures import EncoderClassifier
        >>> from nfkit.spaces import universal_spec_of
        >>> view = AttentionView(universal_spec_of(EncoderClassifier(3, 4, 2, 6, 2)))
        >>> [l.path for l in view.layers], [t.name for t in view.rest.tensors]
        (['encoder.layers.0'], ['embed.weight', 'embed.bias', 'head.weight', 'head.bias'])
    """

    def __init__(self, spec: UniversalSpec) -> None:
        self.spec = spec
        names = {s.name for s in spec.sets}
        attention = [s.name.removesuffix(".heads") for s in spec.sets
                     if s.name.endswith(".heads") and s.name.removesuffix(".heads") + ".query_key" in names]
        if not attention:
            raise UnsupportedArchitectureError(f"transformer-nfn needs attention in the network; {spec.describe()} has none")
        order = {t.name: i for i, t in enumerate(spec.tensors)}
        names = set(order)
        projections = {}
        for a in attention:
            found = _projections(names, a)
            if found is None:
                raise UnsupportedArchitectureError(f"transformer-nfn: the attention at {a} has projections it does not know")
            projections[a] = found
        query = {a: order[p["query"]] for a, p in projections.items()}
        starts = sorted(query.values())
        # a hand-written block's feed-forward lies after its attention and before the next one
        until = {a: next((i for i in starts if i > query[a]), len(spec.tensors)) for a in attention}
        self.layers = tuple(self._block(spec, names, a, projections[a], order[projections[a]["output"]] + 1, until[a])
                            for a in attention)
        used = {source for layer in self.layers for _, source in layer.sources if source}
        internal = {s for layer in self.layers for s in layer.sets}
        rest = [t for t in spec.tensors if t.name not in used]
        stray = [t.name for t in rest if any(a is not None and a.set in internal for a in t.axes)]
        if stray:
            raise UnsupportedArchitectureError(f"transformer-nfn: {stray[0]} carries an encoder layer's internal neurons")
        shared = {a.set for t in spec.tensors if t.name in used for a in t.axes if a is not None} - internal
        self.rest = self._rest_spec(rest, shared) if rest else None

    @staticmethod
    def _block(spec: UniversalSpec, names: set[str], attention: str, projections: dict[str, str], start: int,
               until: int) -> EncoderLayerTensors:
        path = attention.removesuffix(_ATTENTION)
        if attention.endswith(_ATTENTION) and f"{path}.linear1.weight" in names and f"{path}.linear2.weight" in names:
            return _encoder_layer(spec, path, projections)  # an nn.TransformerEncoderLayer: its norms are its own
        # attention in a block of the user's own (a ViT block): the feed-forward pair that follows it; its norms
        # stay with the rest of the network, whose stream axis the view fixes
        ffn = _feedforward_after(spec, projections, start, until)
        if ffn is None:
            raise UnsupportedArchitectureError(
                f"transformer-nfn reads attention blocks (attention, then a feed-forward Linear pair D → H → D on its "
                f"stream); {attention} has no such pair after it"
            )
        return _one_block(spec, _module_of(attention) or attention, attention, projections, ffn, None)

    def _rest_spec(self, tensors: list[TensorSpec], shared: set[str]) -> UniversalSpec:
        fixed = []
        for t in tensors:
            fixed.append(replace(t, axes=tuple(None if a is None or a.set in shared else a for a in t.axes)))
        carried = {a.set for t in fixed for a in t.axes if a is not None}
        return UniversalSpec(tuple(fixed), tuple(s for s in self.spec.sets if s.name in carried))

    def group(self) -> UniversalGroup:
        """What a model on the view respects: the layers' heads × GL(d) × feed-forward permutations, and
        the permutations of the rest's own sets (the stream and other shared sets stay fixed)."""
        internal = {s for layer in self.layers for s in layer.sets}
        rest = {s.name for s in self.rest.sets} if self.rest is not None else set()
        return UniversalGroup(
            [replace(s, factors=frozenset()) if s.kind == "permutation" else s for s in self.spec.sets if s.name in internal | rest]
        )

    def split(self, features: UniversalFeatures) -> tuple[list[TransformerFeatures], UniversalFeatures | None]:
        """Per encoder layer its transformer features, and the rest's features (``None`` without a rest)."""
        self.spec.require_compatible(features.spec)
        named = features.named
        blocks = []
        for layer in self.layers:
            tensors = {}
            for name, source in layer.sources:
                if source:
                    tensors[name] = _to_transformer_layout(name, named[source])
                else:
                    shape = layer.spec.tensor_shapes()[name]
                    tensors[name] = next(iter(named.values())).new_zeros((features.batch_size, features.channels, *shape))
            blocks.append(TransformerFeatures(layer.spec, tensors))
        rest = None
        if self.rest is not None:
            rest = UniversalFeatures(self.rest, {t.name: named[t.name] for t in self.rest.tensors})
        return blocks, rest
