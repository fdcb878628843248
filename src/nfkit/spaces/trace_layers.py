"""How the layers that open or join neuron sets label their parameters, for
:func:`~nfkit.spaces.trace.universal_spec_of`: dense maps, norms, multi-head attention (heads × GL(d)),
PyTorch's encoder layer, nfkit's own self-attention, and GRU/LSTM gate blocks."""

from __future__ import annotations

from typing import Any

from torch import fx, nn

from nfkit.errors import SpecMismatchError, UnsupportedModuleError
from nfkit.nets.transformer import SelfAttention
from nfkit.spaces.trace_graph import (_ACTIVATION_FUNCTIONS, _ACTIVATION_MODULES, _ALL, _MIXED, _NONE, _ODD, _Trace,
                                      _unsupported, _Value)

#: GRU gates (r, z, n) and LSTM gates (i, f, g, o): which rows carry the hidden units' signs
_GATES = {nn.GRU: ("r", "z", "n"), nn.LSTM: ("i", "f", "g", "o")}
_SIGNED_GATE = {nn.GRU: "n", nn.LSTM: "g"}


def _linear(trace: _Trace, path: str, x: _Value, out: int, n_in: int, weight: str, bias: str | None, factors: frozenset[str]) -> _Value:
    origin = trace.new(path, out, factors)
    if x.flattened:
        s = trace.root(x.origin)
        if s.size is None or n_in % s.size:
            raise SpecMismatchError(f"{path}: {n_in} inputs do not split into the {s.size} channels flattened before it")
        trace.add(weight, weight, (out, s.size, n_in // s.size), ((origin, "out"), (x.origin, "in"), None))
    else:
        trace.size(x.origin, n_in, path)
        trace.add(weight, weight, (out, n_in), ((origin, "out"), (x.origin, "in")))
    if bias is not None:
        trace.add(bias, bias, (out,), ((origin, "out"),))
    return _Value(origin, -1, ndim=x.ndim)


#: a traced tensor's name, the parameter it is read from, and the rows of that parameter it occupies
_Slot = tuple[str, str, tuple[int, int] | None]


def _label_attention(trace: _Trace, path: str, sizes: tuple[int, int, int, int], inputs: tuple[str, str],
                     slots: dict[str, tuple[_Slot, _Slot | None]]) -> str:
    """Heads permuted together, ``GL(d)`` per head on queries/keys (``W_Q ↦ A W_Q``, ``W_K ↦ A⁻ᵀ W_K``) and on
    values/outputs (``W_V ↦ N W_V``, ``W_O ↦ W_O N⁻¹``): Transformer-NFN's group (Tran et al. 2025, Sec. 3).

    ``sizes`` are ``(h, d_k, d_v, D)``; ``inputs`` the sets the queries and the keys/values read; ``slots``
    per projection ``"q"``, ``"k"``, ``"v"``, ``"o"`` its weight and bias (``None`` without one), labelled
    ``(h, d, D)`` and ``(D, h, d_v)``. Returns the output's new set."""
    h, d_k, d_v, d_model = sizes
    heads = trace.new(f"{path}.heads", h, _NONE)
    qk = trace.new(f"{path}.query_key", d_k, _NONE, kind="gl", blocks=heads)
    vo = trace.new(f"{path}.value_output", d_v, _NONE, kind="gl", blocks=heads)
    out = trace.new(path, d_model, _ALL)
    for part, gl, role, width, source in (("q", qk, "out", d_k, inputs[0]), ("k", qk, "in", d_k, inputs[1]),
                                          ("v", vo, "out", d_v, inputs[1])):
        (name, parameter, rows), bias = slots[part]
        trace.add(name, parameter, (h, width, d_model), ((heads, "tied"), (gl, role), (source, "in")), rows)
        if bias is not None:
            trace.add(bias[0], bias[1], (h, width), ((heads, "tied"), (gl, role)), bias[2])
    (name, parameter, rows), bias = slots["o"]
    trace.add(name, parameter, (d_model, h, d_v), ((out, "out"), (heads, "tied"), (vo, "in")), rows)
    if bias is not None:
        trace.add(bias[0], bias[1], (d_model,), ((out, "out"),), bias[2])
    return out


def _attention(trace: _Trace, node: fx.Node, m: nn.MultiheadAttention, path: str, q: _Value, kv: _Value) -> _Value:
    """PyTorch's attention: its packed ``in_proj_weight`` rows ``q | k | v`` and ``out_proj`` (:func:`_label_attention`)."""
    if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn or q.feature_dim == 1 or q.flattened:
        raise _unsupported(node, "attention with separate q/k/v projections, bias_k/bias_v or zero attention")
    e, h = m.embed_dim, m.num_heads
    for source in (q, kv):
        trace.size(source.origin, e, path)
    p = f"{path}."
    slots: dict[str, tuple[_Slot, _Slot | None]] = {
        part: ((f"{p}in_proj_weight[{part}]", p + "in_proj_weight", (g * e, (g + 1) * e)),
               (f"{p}in_proj_bias[{part}]", p + "in_proj_bias", (g * e, (g + 1) * e)) if m.in_proj_bias is not None else None)
        for g, part in enumerate("qkv")
    }
    slots["o"] = ((p + "out_proj.weight", p + "out_proj.weight", None),
                  (p + "out_proj.bias", p + "out_proj.bias", None) if m.out_proj.bias is not None else None)
    out = _label_attention(trace, path, (h, e // h, e // h, e), (q.origin, kv.origin), slots)
    return _Value(out, -1, ndim=q.ndim if q.ndim is not None else 3)


def _self_attention(trace: _Trace, node: fx.Node, m: SelfAttention, path: str, x: _Value) -> _Value:
    """nfkit's :class:`~nfkit.nets.transformer.SelfAttention`: separate query/key/value/output Linears, their
    rows split into heads (:func:`_label_attention`)."""
    if x.feature_dim == 1 or x.flattened:
        raise _unsupported(node, "self-attention over a channel axis")
    d_model = m.out_projection.out_features
    trace.size(x.origin, d_model, path)

    def slot(linear: str) -> tuple[_Slot, _Slot | None]:
        name = f"{path}.{linear}"
        return (f"{name}.weight", f"{name}.weight", None), (
            (f"{name}.bias", f"{name}.bias", None) if getattr(m, linear).bias is not None else None)

    slots = {"q": slot("queries"), "k": slot("keys"), "v": slot("values"), "o": slot("out_projection")}
    out = _label_attention(trace, path, (m.heads, m.d_k, m.d_v, d_model), (x.origin, x.origin), slots)
    return _Value(out, -1, ndim=3)  # the layer splits (B, T, D) inputs into heads


def _norm(trace: _Trace, m: nn.LayerNorm, path: str, x: _Value) -> _Value:
    if len(m.normalized_shape) != 1 or x.feature_dim == 1:
        raise UnsupportedModuleError(f"cannot derive the weight space: {path} normalises more than the feature axis")
    trace.size(x.origin, m.normalized_shape[0], path)
    trace.restrict(x.origin, _NONE)
    if m.elementwise_affine:
        for name in ("weight", "bias") if m.bias is not None else ("weight",):
            trace.add(f"{path}.{name}", f"{path}.{name}", (m.normalized_shape[0],), ((x.origin, "tied"),))
    return x


def _encoder_layer(trace: _Trace, node: fx.Node, m: nn.TransformerEncoderLayer, path: str, x: _Value) -> _Value:
    """PyTorch's encoder layer: ``x + SA(LN x)``, ``x + FF(LN x)`` (pre-norm) or ``LN(x + SA x)``, ``LN(x + FF x)``."""
    act = m.activation
    keep = _ACTIVATION_FUNCTIONS.get(act) if not isinstance(act, nn.Module) else _ACTIVATION_MODULES.get(type(act))
    if keep is None:
        raise _unsupported(node, f"the encoder layer's activation {act!r}")
    stream = _Value(x.origin, -1, ndim=x.ndim if x.ndim is not None else 3)

    def attention(v: _Value) -> _Value:
        return _attention(trace, node, m.self_attn, f"{path}.self_attn", v, v)

    def feed_forward(v: _Value) -> _Value:
        hidden = _linear(trace, f"{path}.linear1", v, m.linear1.out_features, m.linear1.in_features, f"{path}.linear1.weight",
                         f"{path}.linear1.bias" if m.linear1.bias is not None else None, _ALL)
        trace.restrict(hidden.origin, keep)
        return _linear(trace, f"{path}.linear2", hidden, m.linear2.out_features, m.linear2.in_features, f"{path}.linear2.weight",
                       f"{path}.linear2.bias" if m.linear2.bias is not None else None, _ALL)

    for block, norm in ((attention, m.norm1), (feed_forward, m.norm2)):
        name = f"{path}.norm1" if norm is m.norm1 else f"{path}.norm2"
        if m.norm_first:
            update = block(_norm(trace, norm, name, stream))
            trace.tie(stream.origin, update.origin, path)
        else:
            update = block(stream)
            trace.tie(stream.origin, update.origin, path)
            _norm(trace, norm, name, stream)
    return stream


def _flatten(x: _Value) -> _Value:
    return _Value(x.origin, -1, flattened=x.spatial, ndim=2)


def _recurrent(trace: _Trace, node: fx.Node, m: nn.GRU | nn.LSTM, p: str, x: _Value) -> tuple[Any, ...]:
    if m.bidirectional or (isinstance(m, nn.LSTM) and m.proj_size > 0) or x.feature_dim == 1 or x.flattened:
        raise _unsupported(node, "bidirectional or projected recurrent layers")
    gates = _GATES[type(m)]
    h = m.hidden_size
    previous = x
    for layer in range(m.num_layers):
        hidden = trace.new(f"{p}hidden{layer}", h, _ODD)
        trace.size(previous.origin, m.input_size if layer == 0 else h, f"{p}layer {layer}")
        for kind, source in (("ih", previous.origin), ("hh", hidden)):
            n_in = trace.root(source).size
            assert n_in is not None
            for g, gate in enumerate(gates):
                role = "out" if gate == _SIGNED_GATE[type(m)] else "tied"
                rows = (g * h, (g + 1) * h)
                weight = f"{p}weight_{kind}_l{layer}"
                trace.add(f"{weight}[{gate}]", weight, (h, n_in), ((hidden, role), (source, "in")), rows)
                if m.bias:
                    bias = f"{p}bias_{kind}_l{layer}"
                    trace.add(f"{bias}[{gate}]", bias, (h,), ((hidden, role),), rows)
        # batched input is assumed when the input's rank is unknown: (B, T, F) or (T, B, F)
        previous = _Value(hidden, -1, ndim=x.ndim if x.ndim is not None else 3)
    final: Any = previous if m.num_layers == 1 else _MIXED
    state: Any = final if isinstance(m, nn.GRU) else (final, final)
    return (previous, state)
