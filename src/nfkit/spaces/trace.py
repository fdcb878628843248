"""Derive a :class:`~nfkit.spaces.UniversalSpec` from a module by tracing its graph (``torch.fx``).

Every value in the traced graph carries the neuron set that indexes its feature axis. A layer that
produces features (``Linear``, ``Conv``, ``Embedding``, a GRU/LSTM's hidden state, a LoRA adapter's
rank) opens a new set; the operations after it decide what may act on the set:

* a residual addition ties the sets of its two operands (the same permutation, and the same
  diagonal, must act on both);
* a positively homogeneous activation (ReLU, LeakyReLU, max-pooling) keeps positive scaling and
  drops sign flips; an odd one (tanh, sine, softsign) keeps sign flips and drops scaling; any other
  (sigmoid, GELU, SiLU, …), a norm, or adding a constant keeps the permutation only;
* adding a fixed table (a non-persistent buffer: the position encodings of
  :func:`~nfkit.nets.transformer.add_positions`) fixes the set: no permutation commutes with it;
* attention (``nn.MultiheadAttention``, nfkit's ``SelfAttention``) permutes its heads together and
  carries one GL(d) per head on queries/keys and another on values/outputs;
* a norm's parameters and statistics follow the permutation of its channel axis;
* the network's inputs and outputs are fixed: no symmetry acts on them;
* a GRU's or LSTM's hidden units carry permutations and sign flips: flipping unit ``k`` flips the
  rows of the candidate (GRU ``n``) or cell (LSTM ``g``) gate and the column ``k`` of every
  hidden-to-hidden matrix, while the sigmoid gates' rows only follow the permutation;
* a LoRA adapter's rank axis carries GL(r) (``B ↦ B R``, ``A ↦ R⁻¹ A``).

Anything else is refused with an error that names the operation, so no symmetry is ever assumed
that the network does not have. The resulting groups are checked on the real modules in
``tests/spaces/test_universal_trace.py``.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import replace
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import fx, nn

from nfkit.errors import SpecMismatchError, UnsupportedModuleError
from nfkit.nets.lora import LoRALinear
from nfkit.nets.sine import Sine
from nfkit.nets.transformer import SelfAttention, add_positions
from nfkit.spaces.trace_graph import (_ACTIVATION_FUNCTIONS, _ACTIVATION_METHODS, _ACTIVATION_MODULES, _ALL,
                                      _ATTENTION_WEIGHTS, _NONE, _Constant, _Trace, _unsupported, _Unusable, _one_input, _Value,
                                      _values)
from nfkit.spaces.trace_layers import _attention, _encoder_layer, _flatten, _linear, _norm, _recurrent, _self_attention
from nfkit.spaces.universal import NeuronSet, TensorAxis, TensorSpec, UniversalSpec
from nfkit.spaces.universal_features import UniversalFeatures

__all__ = ["universal_spec_of", "universal_weights_of", "universal_load_into"]

# The bookkeeping (sets, values, activation tables) is in trace_graph.py, the labelling of composite
# layers (attention, encoder layers, GRU/LSTM) in trace_layers.py; this file walks the graph.


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, (LoRALinear, Sine, SelfAttention)) or super().is_leaf_module(m, module_qualified_name)


_M = TypeVar("_M", bound=nn.Module)


def _module(trace: _Trace, node: fx.Node, m: nn.Module, path: str, env: dict[str, Any]) -> Any:
    if isinstance(m, nn.MultiheadAttention):
        args = [env[a.name] if isinstance(a, fx.Node) else a for a in node.args]
        query, key, value = (args + [None] * 3)[:3]
        if not (isinstance(query, _Value) and isinstance(key, _Value) and key == value):
            raise _unsupported(node, "attention needs (query, key, value) tensors with key and value the same")
        return (_attention(trace, node, m, path, query, key), _ATTENTION_WEIGHTS)
    x = _one_input(node, env)
    p = f"{path}." if path else ""
    if isinstance(m, SelfAttention):
        return _self_attention(trace, node, m, path, x)
    if type(m) in _ACTIVATION_MODULES:
        trace.restrict(x.origin, _ACTIVATION_MODULES[type(m)])
        return x
    if isinstance(m, LoRALinear):
        rank = trace.new(f"{path}.rank", m.rank, _NONE, kind="gl")
        y = _linear(trace, path, x, m.base.out_features, m.base.in_features, p + "base.weight",
                    p + "base.bias" if m.base.bias is not None else None, _ALL)
        if x.flattened:
            raise _unsupported(node, "a LoRA adapter after a flatten")
        trace.add(p + "lora_A", p + "lora_A", (m.rank, m.base.in_features), ((rank, "out"), (x.origin, "in")))
        trace.add(p + "lora_B", p + "lora_B", (m.base.out_features, m.rank), ((y.origin, "out"), (rank, "in")))
        return y
    if isinstance(m, nn.Linear):
        if x.spatial:
            raise _unsupported(node, "a Linear applied to a conv feature map (flatten or pool it first)")
        return _linear(trace, path, x, m.out_features, m.in_features, p + "weight", p + "bias" if m.bias is not None else None, _ALL)
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        if m.groups != 1 or x.feature_dim == -1 or x.flattened:
            raise _unsupported(node, "grouped convolutions and convolutions on flattened features")
        origin = trace.new(path, m.out_channels, _ALL)
        trace.size(x.origin, m.in_channels, path)
        kernel = tuple(m.kernel_size)
        trace.add(p + "weight", p + "weight", (m.out_channels, m.in_channels, *kernel),
                  ((origin, "out"), (x.origin, "in"), *([None] * len(kernel))))
        if m.bias is not None:
            trace.add(p + "bias", p + "bias", (m.out_channels,), ((origin, "out"),))
        return _Value(origin, 1, spatial=True)
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
        if isinstance(m, nn.LayerNorm):
            if len(m.normalized_shape) != 1 or x.feature_dim != -1:
                raise _unsupported(node, "a LayerNorm over more than the feature axis")
            n = m.normalized_shape[0]
            names = ["weight", "bias"] if m.elementwise_affine else []
        else:
            if x.feature_dim != 1 and not (x.feature_dim == -1 and x.ndim == 2 and isinstance(m, nn.BatchNorm1d)):
                raise _unsupported(node, "a batch norm whose channel axis is not dim 1 (or of unknown rank: pass example= inputs)")
            n = m.num_features
            names = (["weight", "bias"] if m.affine else []) + (["running_mean", "running_var"] if m.track_running_stats else [])
        trace.size(x.origin, n, path)
        trace.restrict(x.origin, _NONE)  # a norm divides by a statistic of its input: no scaling or sign passes it
        for name in names:
            trace.add(p + name, p + name, (n,), ((x.origin, "tied"),))
        return x
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise _unsupported(node, "nn.Flatten other than start_dim=1, end_dim=-1")
        return _flatten(x)
    if isinstance(m, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d)):
        size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size,)
        return _Value(x.origin, 1, spatial=any(s != 1 for s in size))
    if isinstance(m, nn.Embedding):
        if m.max_norm is not None:
            raise _unsupported(node, "an Embedding with max_norm renormalises its rows")
        origin = trace.new(path, m.embedding_dim, _ALL)
        # the vocabulary axis is over the network's input (token ids): fixed, recorded as such for UNF's io convention
        vocabulary = x.origin if trace.root(x.origin).fixed else trace.new(f"{path}.vocabulary", m.num_embeddings, _NONE, fixed=True)
        trace.add(p + "weight", p + "weight", (m.num_embeddings, m.embedding_dim), ((vocabulary, "in"), (origin, "out")))
        return _Value(origin, -1, ndim=None if x.ndim is None else x.ndim + 1)
    if isinstance(m, (nn.GRU, nn.LSTM)):
        return _recurrent(trace, node, m, p, x)
    if isinstance(m, nn.TransformerEncoderLayer):
        return _encoder_layer(trace, node, m, path, x)
    if isinstance(m, nn.TransformerEncoder):
        for i, layer in enumerate(m.layers):
            x = _encoder_layer(trace, node, layer, f"{p}layers.{i}", x)
        return x if m.norm is None else _norm(trace, m.norm, f"{p}norm", x)  # type: ignore[arg-type]
    raise _unsupported(node, f"{type(m).__name__} is not a module nfkit can analyse")


def _function(trace: _Trace, node: fx.Node, env: dict[str, Any]) -> Any:
    target = node.target
    args = [env[a.name] if isinstance(a, fx.Node) else a for a in node.args]
    if target is operator.getitem:
        container, index = args
        if isinstance(container, tuple):
            item = container[int(index)]  # type: ignore[arg-type]
            if isinstance(item, _Unusable):
                raise _unsupported(node, item.why)
            return item
        if isinstance(container, _Value):
            parts = index if isinstance(index, tuple) else (index,)
            if container.feature_dim == -1 and container.ndim is not None and len(parts) < container.ndim and all(
                p is not Ellipsis and p is not None for p in parts
            ):
                return _Value(container.origin, -1, ndim=container.ndim - sum(isinstance(p, int) for p in parts))
        raise _unsupported(node, "indexing that may reach the feature axis")
    if target in (operator.add, torch.add):
        found = _values(args)
        if len(found) == 2:
            a, b = found
            if (a.feature_dim, a.spatial, a.flattened) != (b.feature_dim, b.spatial, b.flattened):
                raise _unsupported(node, "adding tensors of different layouts")
            trace.tie(a.origin, b.origin, node.name)
            return a if a.ndim is not None else b  # the operand whose rank is known
        if len(found) == 1:
            trace.restrict(found[0].origin, _NONE)  # x + constant: a shift no scaling or sign commutes with
            return found[0]
    if target in (operator.mul, torch.mul, operator.truediv):
        found = _values(args)
        if len(found) == 1 and all(isinstance(a, (int, float)) for a in args if not isinstance(a, _Value)):
            return found[0]
    if target is add_positions and isinstance(args[1], _Constant):
        x = _one_input(node, env)
        trace.root(x.origin).fixed = True  # adding a fixed table per feature: no permutation of the features commutes with it
        return x
    if target in _ACTIVATION_FUNCTIONS:
        x = _one_input(node, env)
        trace.restrict(x.origin, _ACTIVATION_FUNCTIONS[target])
        return x
    if target is torch.flatten and args[1:2] == [1] and node.kwargs.get("end_dim", -1) == -1 and len(args) <= 2:
        return _flatten(_one_input(node, env))
    if target is F.adaptive_avg_pool2d and args[1:] in ([1], [(1, 1)]):
        return _Value(_one_input(node, env).origin, 1)
    raise _unsupported(node)


def _method(trace: _Trace, node: fx.Node, env: dict[str, Any]) -> Any:
    x = env[node.args[0].name] if isinstance(node.args[0], fx.Node) else None
    if not isinstance(x, _Value):
        raise _unsupported(node)
    if node.target in _ACTIVATION_METHODS:
        trace.restrict(x.origin, _ACTIVATION_METHODS[str(node.target)])
        return x
    if node.target == "contiguous":
        return x
    if node.target == "flatten" and list(node.args[1:]) == [1]:
        return _flatten(x)
    if node.target == "flatten" and list(node.args[1:]) == [2] and x.feature_dim == 1 and x.spatial:
        return _Value(x.origin, 1, spatial=True, ndim=3)  # (B, C, H·W): the positions become one token axis
    if node.target == "transpose" and {*node.args[1:]} in ({1, 2}, {1, -1}) and x.feature_dim == 1 and x.ndim == 3:
        return _Value(x.origin, -1, ndim=3)  # (B, C, T) → (B, T, C)
    if node.target == "mean" and x.feature_dim == -1 and x.ndim is not None and not x.flattened:
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        if all(isinstance(k, int) and 0 <= k < x.ndim - 1 for k in dims) and not node.kwargs.get("keepdim", False):
            return _Value(x.origin, -1, ndim=x.ndim - len(dims))
    if node.target == "mean" and x.spatial and x.feature_dim == 1:
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        dims = tuple(dims) if isinstance(dims, (tuple, list)) else (dims,)
        if dims in ((2, 3), (-2, -1), (-1, -2), (3, 2)) and not node.kwargs.get("keepdim", False):
            return _Value(x.origin, -1, ndim=2)
    raise _unsupported(node)


def universal_spec_of(module: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...] | None = None) -> UniversalSpec:
    """The weight space of ``module`` with the symmetry its graph allows (see the module docstring).

    ``example`` (inputs the module accepts) tells the tracer the rank of every tensor, which indexing such
    as ``x[:, 0]`` or a mean over tokens needs; without it, such operations are refused unless a recurrent
    or attention layer fixed the rank (those are assumed to see batched input).

    Example:
        >>> net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> spec = universal_spec_of(net)
        >>> [(t.name, t.shape) for t in spec.tensors][:2]
        [('0.weight', (8, 3)), ('0.bias', (8,))]
        >>> spec.describe()
        '4 tensors, 50 entries; sets 0 (8, permutation × scale)'
        >>> spec.symmetry_group().name
        'permutations × positive scaling'
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"universal_spec_of expects an nn.Module, got {type(module).__name__}")
    if _Tracer().is_leaf_module(module, ""):  # a GRU or an encoder layer on its own: trace a wrapper, report the module's names
        wrapped = _spec_of_wrapped(module, example)
        if wrapped is not None:
            return wrapped
    try:
        graph = _Tracer().trace(module)
    except Exception as error:  # fx raises many types for dynamic control flow
        raise UnsupportedModuleError(f"cannot trace {type(module).__name__} with torch.fx: {str(error).splitlines()[0]}") from error
    if example is not None:
        from torch.fx.passes.shape_prop import ShapeProp

        # on a copy: a forward pass in training mode would update the caller's batch-norm statistics
        with torch.no_grad():
            ShapeProp(fx.GraphModule(copy.deepcopy(module), graph)).propagate(*(example if isinstance(example, tuple) else (example,)))
    trace = _Trace()
    env: dict[str, Any] = {}
    called: set[str] = set()
    for node in graph.nodes:
        if node.op == "placeholder":
            env[node.name] = _Value(trace.new(f"input:{node.name}", None, _NONE, fixed=True), 0)
        elif node.op == "call_module":
            target = str(node.target)
            layer = module.get_submodule(target)
            if target in called and any(True for _ in layer.state_dict()):  # a dropout may be reused; weights may not
                raise _unsupported(node, "a module called twice shares its weights between two places")
            called.add(target)
            node.meta["module_type"] = type(layer).__name__
            env[node.name] = _module(trace, node, layer, target, env)
        elif node.op == "call_function":
            env[node.name] = _function(trace, node, env)
        elif node.op == "call_method":
            env[node.name] = _method(trace, node, env)
        elif node.op == "get_attr" and _non_persistent_buffer(module, str(node.target)):
            env[node.name] = _Constant(str(node.target))
        elif node.op == "output":
            for value in _values([env[n.name] for n in node.all_input_nodes]):
                trace.root(value.origin).fixed = True
        else:
            raise _unsupported(node, "the module reads a parameter or buffer directly")
        meta = node.meta.get("tensor_meta")
        traced = env.get(node.name)
        if isinstance(traced, _Value) and meta is not None and hasattr(meta, "shape"):
            env[node.name] = replace(traced, ndim=len(meta.shape))
    if not trace.tensors:
        raise UnsupportedModuleError(f"{type(module).__name__} has no weights to describe (no Linear, Conv, norm, "
                                     f"embedding, recurrent or attention layer)")
    return _build(trace, module)


def _non_persistent_buffer(module: nn.Module, name: str) -> bool:
    """A buffer outside the state dict: fixed data of the architecture (position tables), not a weight."""
    return name in dict(module.named_buffers()) and name not in module.state_dict()


class _Root(nn.Module):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.root = module

    def forward(self, x: torch.Tensor) -> Any:
        return self.root(x)


def _spec_of_wrapped(module: nn.Module, example: Any) -> UniversalSpec | None:
    spec = universal_spec_of(_Root(module), example)

    def strip(name: str) -> str:
        return name[len("root.") :] if name.startswith("root.") else "" if name == "root" else name

    sets = tuple(replace(s, name=strip(s.name) or "output", blocks=strip(s.blocks)) for s in spec.sets)
    tensors = tuple(
        replace(t, name=strip(t.name), parameter=strip(t.parameter), io=tuple(strip(n) or ("output" if n else "") for n in t.io), axes=tuple(
            None if a is None else TensorAxis(strip(a.set) or "output", a.role, strip(a.origin) or "output") for a in t.axes
        ))
        for t in spec.tensors
    )
    return UniversalSpec(tensors, sets)


def _build(trace: _Trace, module: nn.Module) -> UniversalSpec:
    roots: dict[str, NeuronSet] = {}
    for name in trace.sets:
        s = trace.root(name)
        if s.fixed or s.name in roots:
            continue
        assert s.size is not None
        roots[s.name] = NeuronSet(s.name, s.size, "gl" if s.kind == "gl" else "permutation", s.factors if s.kind != "gl" else _NONE,
                                  s.blocks)
    tensors = []
    for name, parameter, rows, shape, axes in trace.tensors:
        labelled: list[TensorAxis | None] = []
        io: list[str] = []
        for axis in axes:
            root = None if axis is None else trace.root(axis[0])
            labelled.append(None if axis is None or root is None or root.fixed else TensorAxis(root.name, axis[1], axis[0]))  # type: ignore[arg-type]
            io.append(root.name if root is not None and root.fixed else "")
        tensors.append(TensorSpec(name, shape, tuple(labelled), parameter, rows, tuple(io)))
    state = {k for k in module.state_dict() if not k.endswith("num_batches_tracked")}
    covered = {t[1] for t in trace.tensors}
    if state - covered:
        raise UnsupportedModuleError(
            f"cannot derive the weight space: {', '.join(sorted(state - covered))} are used by operations nfkit does not analyse"
        )
    return UniversalSpec(tuple(tensors), tuple(roots.values()))


def universal_weights_of(module: nn.Module, spec: UniversalSpec | None = None) -> UniversalFeatures:
    """The module's weights as features of its :func:`universal_spec_of` (batch 1, channel 1), exact copies."""
    spec = spec if spec is not None else universal_spec_of(module)
    state = module.state_dict()
    named = {}
    for t in spec.tensors:
        if t.parameter not in state:
            raise SpecMismatchError(f"the module has no parameter {t.parameter!r}; it does not fit this spec")
        value = state[t.parameter].detach()
        if t.rows is not None:
            value = value[t.rows[0] : t.rows[1]]
        if value.numel() != t.numel:
            raise SpecMismatchError(f"{t.parameter} has {value.numel()} entries, the spec's {t.name} {t.numel}")
        named[t.name] = value.reshape(1, 1, *t.shape).clone()
    return UniversalFeatures(spec, named).check_finite(f"{type(module).__name__}'s weights")


def universal_load_into(module: _M, features: UniversalFeatures, index: int | None = None) -> _M:
    """Write item ``index`` (or the only item) of single-channel ``features`` into ``module``'s
    parameters and buffers, exactly; return the module."""
    if features.channels != 1:
        raise SpecMismatchError(f"load_into needs single-channel features, got {features.channels} channels")
    if index is None:
        if features.batch_size != 1:
            raise SpecMismatchError(f"features hold {features.batch_size} networks; pass index=")
        index = 0
    features[index].check_finite("features to load")
    state = dict(module.named_parameters()) | dict(module.named_buffers())
    with torch.no_grad():
        for t in features.spec.tensors:
            target = state.get(t.parameter)
            if target is None:
                raise SpecMismatchError(f"the module has no parameter {t.parameter!r}; it does not fit this spec")
            value = features.named[t.name][index, 0]
            view = target if t.rows is None else target[t.rows[0] : t.rows[1]]
            if view.numel() != value.numel():
                raise SpecMismatchError(f"{t.parameter} has {view.numel()} entries, the features' {t.name} {value.numel()}")
            view.copy_(value.reshape(view.shape))
    return module
