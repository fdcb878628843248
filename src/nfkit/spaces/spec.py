"""The typed description of a weight space: :class:`LayerSpec` and :class:`WeightSpaceSpec`.

Layout convention (used by every part of nfkit): layer ``i`` (1-based, i = 1..L)
maps neuron layer ``i-1`` to neuron layer ``i``; its weight has axes
``(n_i, n_{i-1}, *kernel)`` and its bias ``(n_i,)``. Neuron layers ``0`` (inputs)
and ``L`` (outputs) are fixed; neuron layers ``1..L-1`` are *hidden* and carry
the symmetry. For a conv layer a neuron is a channel.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NamedTuple, final

import torch

from nfkit.errors import SpecMismatchError
from nfkit.groups.neurons import Factor, HiddenNeuronGroup, hidden_set_name
from nfkit.groups.sets import NeuronSet
from nfkit.spaces.activations import Activation
from nfkit.spaces.universal import TensorAxis, TensorSpec, UniversalSpec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from nfkit.spaces.features import WeightSpaceFeatures

__all__ = ["Axis", "LayerSpec", "WeightSpaceSpec"]

LayerKind = Literal["dense", "conv"]


class Axis(NamedTuple):
    """What one tensor axis carries: ``Axis("neuron", ℓ)`` for neuron layer ℓ, ``Axis("kernel", k)`` for kernel axis k."""

    kind: Literal["neuron", "kernel"]
    index: int  # type: ignore[assignment]  # the field shadows tuple.index on purpose: Axis("neuron", ℓ).index is ℓ


@final
@dataclass(frozen=True)
class LayerSpec:
    """One dense or conv layer ``n_in → n_out``.

    Args:
        kind: ``"dense"`` or ``"conv"``.
        n_out, n_in: output and input neurons (channels for conv).
        kernel: kernel size, ``()`` for dense layers.
        bias: whether the layer has a bias.
        activation: the elementwise activation applied after the layer, if any.
        stride, padding, dilation: conv hyperparameters (do not affect the weight space's shape).
        input_reduction: how a dense layer after conv layers reduces the feature map:
            ``"global_avg_pool"`` or ``"flatten"`` (1×1 maps); ``None`` otherwise.
        name: the module path it came from (not part of equality).
    """

    kind: LayerKind
    n_out: int
    n_in: int
    kernel: tuple[int, ...] = ()
    bias: bool = True
    activation: Activation | None = None
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] | str = ()
    dilation: tuple[int, ...] = ()
    input_reduction: Literal["global_avg_pool", "flatten"] | None = None
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("dense", "conv"):
            raise SpecMismatchError(f"layer kind must be 'dense' or 'conv', got {self.kind!r}")
        if self.n_out <= 0 or self.n_in <= 0:
            raise SpecMismatchError(f"layer sizes must be positive, got n_out={self.n_out}, n_in={self.n_in}")
        if (self.kind == "dense") != (self.kernel == ()):
            raise SpecMismatchError(f"a {self.kind} layer cannot have kernel {self.kernel}")

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """``(n_out, n_in, *kernel)``."""
        return (self.n_out, self.n_in, *self.kernel)

    @property
    def kernel_numel(self) -> int:
        """Entries per kernel (1 for dense layers)."""
        return math.prod(self.kernel)

    @property
    def shape_key(self) -> tuple[object, ...]:
        """What decides tensor shapes: kind, sizes, kernel, bias."""
        return (self.kind, self.n_out, self.n_in, self.kernel, self.bias)

    def describe(self) -> str:
        """E.g. ``"conv 1→16 3×3 +bias relu"``."""
        kernel = "" if not self.kernel else " " + "×".join(map(str, self.kernel))
        bias = " +bias" if self.bias else " no-bias"
        act = f" {self.activation}" if self.activation else ""
        return f"{self.kind} {self.n_in}→{self.n_out}{kernel}{bias}{act}"


@final
@dataclass(frozen=True)
class WeightSpaceSpec:
    """A frozen, hashable description of an MLP's or CNN's weight space.

    Example:
        >>> spec = WeightSpaceSpec.mlp([2, 32, 32, 1], activation="sine")
        >>> spec.neuron_sizes, spec.hidden_sizes, spec.num_parameters
        ((2, 32, 32, 1), (32, 32), 1185)
        >>> spec.symmetry_group().name
        'permutations × sign flips'
        >>> spec.weight_axes(1)
        (Axis(kind='neuron', index=2), Axis(kind='neuron', index=1))
        >>> f = spec.randn(4, channels=3)
        >>> f.weights[0].shape, f.biases[2].shape
        (torch.Size([4, 3, 32, 2]), torch.Size([4, 3, 1]))
    """

    layers: tuple[LayerSpec, ...]
    #: the feature container of this space, set by :mod:`nfkit.spaces.features` (which imports this module)
    features_type: ClassVar[type[WeightSpaceFeatures]]

    def __post_init__(self) -> None:
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise SpecMismatchError("a weight space needs at least one layer")
        for i, (prev, layer) in enumerate(zip(layers, layers[1:]), start=2):
            if layer.n_in != prev.n_out:
                raise SpecMismatchError(
                    f"layer {i} ({layer.describe()}) takes {layer.n_in} inputs but layer {i - 1} "
                    f"({prev.describe()}) gives {prev.n_out}"
                )
            if prev.kind == "dense" and layer.kind == "conv":
                raise SpecMismatchError(f"layer {i} is a conv layer after a dense layer; nfkit does not support that")

    # --- construction ---------------------------------------------------------------------
    @staticmethod
    def mlp(
        sizes: Sequence[int],
        activation: str | Activation = "relu",
        *,
        bias: bool = True,
        output_activation: str | Activation | None = None,
    ) -> WeightSpaceSpec:
        """The spec of an MLP ``sizes[0] → … → sizes[-1]`` with one hidden activation."""
        if len(sizes) < 2:
            raise SpecMismatchError(f"an MLP needs at least an input and an output size, got {list(sizes)}")
        act = Activation.parse(activation)
        out_act = Activation.parse(output_activation) if output_activation is not None else None
        num = len(sizes) - 1
        return WeightSpaceSpec(
            tuple(
                LayerSpec("dense", sizes[i + 1], sizes[i], bias=bias, activation=act if i < num - 1 else out_act)
                for i in range(num)
            )
        )

    def without_kernels(self) -> WeightSpaceSpec:
        """The same neurons, biases and activations with every layer dense (kernels folded away).

        MAGEP-NFN takes matrix path products, which need one matrix per layer: a
        :class:`~nfkit.layers.MonomialLinear` from a CNN spec to this spec moves the kernel
        entries into channels first (Equivariant Polynomial Functional Networks, Sec. 5).
        """
        return WeightSpaceSpec(
            tuple(LayerSpec("dense", l.n_out, l.n_in, bias=l.bias, activation=l.activation, name=l.name) for l in self.layers)
        )

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description; :meth:`from_dict` inverts it exactly."""
        layers = []
        for l in self.layers:
            layers.append(
                {
                    "kind": l.kind,
                    "n_out": l.n_out,
                    "n_in": l.n_in,
                    "kernel": list(l.kernel),
                    "bias": l.bias,
                    "activation": None if l.activation is None else [l.activation.name, l.activation.parameter],
                    "stride": list(l.stride),
                    "padding": l.padding if isinstance(l.padding, str) else list(l.padding),
                    "dilation": list(l.dilation),
                    "input_reduction": l.input_reduction,
                    "name": l.name,
                }
            )
        return {"layers": layers}

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> WeightSpaceSpec:
        """The spec described by :meth:`to_dict`'s output."""
        try:
            layers = []
            for l in data["layers"]:
                activation = None if l["activation"] is None else Activation(l["activation"][0], l["activation"][1])
                padding = l["padding"] if isinstance(l["padding"], str) else tuple(l["padding"])
                layers.append(
                    LayerSpec(
                        l["kind"], int(l["n_out"]), int(l["n_in"]), kernel=tuple(l["kernel"]), bias=bool(l["bias"]),
                        activation=activation, stride=tuple(l["stride"]), padding=padding, dilation=tuple(l["dilation"]),
                        input_reduction=l["input_reduction"], name=l.get("name", ""),
                    )
                )
        except (KeyError, TypeError, IndexError) as error:
            raise SpecMismatchError(f"not a weight-space spec description ({error!r})") from None
        return WeightSpaceSpec(tuple(layers))

    # --- sizes and labels ------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """L, the number of weight layers."""
        return len(self.layers)

    @property
    def neuron_sizes(self) -> tuple[int, ...]:
        """``(n_0, n_1, …, n_L)``."""
        return (self.layers[0].n_in, *(layer.n_out for layer in self.layers))

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """``(n_1, …, n_{L-1})``: the neuron layers a symmetry may act on."""
        return self.neuron_sizes[1:-1]

    @property
    def weight_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Per layer ``(n_i, n_{i-1}, *kernel)``."""
        return tuple(layer.weight_shape for layer in self.layers)

    @property
    def bias_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Per layer ``(n_i,)``."""
        return tuple((layer.n_out,) for layer in self.layers)

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{"W1": (n_1, n_0, *kernel), "b1": (n_1,), …}`` in the features' order."""
        shapes: dict[str, tuple[int, ...]] = {}
        for i, layer in enumerate(self.layers, start=1):
            shapes[f"W{i}"] = layer.weight_shape
            shapes[f"b{i}"] = (layer.n_out,)
        return shapes

    def zero_tensors(self) -> frozenset[str]:
        """Names of stored biases the network does not have (bias-free layers): always zero."""
        return frozenset(f"b{i}" for i, layer in enumerate(self.layers, start=1) if not layer.bias)

    @property
    def num_parameters(self) -> int:
        """Number of real parameters of the source network (bias-free layers count no bias)."""
        return sum(math.prod(layer.weight_shape) + (layer.n_out if layer.bias else 0) for layer in self.layers)

    @property
    def shape_key(self) -> tuple[tuple[object, ...], ...]:
        """Everything that decides tensor shapes (activations and conv strides excluded)."""
        return tuple(layer.shape_key for layer in self.layers)

    def weight_axes(self, i: int) -> tuple[Axis, ...]:
        """What each axis of layer ``i``'s weight carries (``i`` is 0-based here)."""
        layer = self.layers[i]
        return (Axis("neuron", i + 1), Axis("neuron", i), *(Axis("kernel", k) for k in range(len(layer.kernel))))

    def bias_axes(self, i: int) -> tuple[Axis, ...]:
        """What the axis of layer ``i``'s bias carries (``i`` is 0-based)."""
        return (Axis("neuron", i + 1),)

    def is_hidden(self, neuron_layer: int) -> bool:
        """Whether neuron layer ℓ (0..L) is hidden, so that a symmetry acts on it."""
        return 0 < neuron_layer < self.num_layers

    @property
    def hidden_activations(self) -> tuple[Activation, ...]:
        """The activations after layers 1..L-1 (``identity`` where there is none)."""
        return tuple(layer.activation or Activation("identity") for layer in self.layers[:-1])

    # --- symmetry --------------------------------------------------------------------------
    def symmetry_group(self) -> HiddenNeuronGroup:
        """The largest group this architecture is known to have.

        Hidden-neuron permutations always; times positive scaling when every hidden
        activation is positively homogeneous; times sign flips when every hidden
        activation is odd. Nothing more.
        """
        factors = {Factor.PERMUTATION}
        activations = self.hidden_activations
        if all(a.positively_homogeneous for a in activations):
            factors.add(Factor.POSITIVE_SCALING)
        if all(a.odd for a in activations):
            factors.add(Factor.SIGN_FLIP)
        return HiddenNeuronGroup(self.hidden_sizes, factors)

    def permutation_group(self) -> HiddenNeuronGroup:
        """The hidden-neuron permutations alone (what NP, HNP and UNF respect here)."""
        return HiddenNeuronGroup(self.hidden_sizes, [Factor.PERMUTATION])

    def trivial_group(self) -> HiddenNeuronGroup:
        """The identity alone; its negative control is :meth:`permutation_group`."""
        return HiddenNeuronGroup(self.hidden_sizes)

    def universal(self, *, permute_io: bool = False) -> UniversalSpec:
        """This space as a :class:`~nfkit.spaces.UniversalSpec`: the one description groups act through.

        Tensors are ``W1, b1, …`` as in the dense features; hidden neuron layer ℓ is set ``"hℓ"`` with the
        spec's own factors (:meth:`symmetry_group`'s sets). With ``permute_io`` the input and output
        neurons are permutation sets ``"h0"`` and ``"hL"`` too: the space NP is equivariant to (Zhou et
        al. 2023, Eq. 2).

        Example:
            >>> spec = WeightSpaceSpec.mlp([2, 8, 1], "relu").universal()
            >>> [t.name for t in spec.tensors], spec.tensor("W1").shape
            (['W1', 'b1', 'W2', 'b2'], (8, 2))
            >>> spec.sets[0]
            NeuronSet(name='h1', size=8, kind='permutation', factors=frozenset({'scale'}), blocks='')
        """
        return _universal(self, tuple(layer.name for layer in self.layers), permute_io)

    # --- features --------------------------------------------------------------------------
    def randn(
        self,
        batch_size: int,
        channels: int = 1,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> WeightSpaceFeatures:
        """Standard-normal features of shape weights ``(B, C, n_i, n_{i-1}, *kernel)``, biases ``(B, C, n_i)``.

        Biases of bias-free layers are zero.
        """
        def draw(shape: tuple[int, ...]) -> torch.Tensor:
            x = torch.randn((batch_size, channels, *shape), generator=generator, dtype=dtype)
            return x.to(device) if device is not None else x

        weights = [draw(s) for s in self.weight_shapes]
        biases = [draw(s) if layer.bias else draw(s).zero_() for s, layer in zip(self.bias_shapes, self.layers)]
        return self.features_type(self, weights, biases)

    def zeros(
        self,
        batch_size: int,
        channels: int = 1,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> WeightSpaceFeatures:
        """All-zero features (shapes as in :meth:`randn`)."""
        weights = [torch.zeros((batch_size, channels, *s), dtype=dtype, device=device) for s in self.weight_shapes]
        biases = [torch.zeros((batch_size, channels, *s), dtype=dtype, device=device) for s in self.bias_shapes]
        return self.features_type(self, weights, biases)

    def unflatten(self, flat: torch.Tensor) -> WeightSpaceFeatures:
        """Features from ``(B, C, P)`` flat entries (inverse of :meth:`WeightSpaceFeatures.flatten`)."""
        return self.features_type.unflatten(self, flat)

    def require_compatible(self, other: WeightSpaceSpec, what: str = "features") -> None:
        """Raise :class:`SpecMismatchError` unless ``other`` has the same tensor shapes as ``self``."""
        if getattr(other, "shape_key", None) == self.shape_key:
            return
        lines = [f"{what} do not match the weight-space spec:"]
        lines.append(f"  expected: {self.describe()}")
        lines.append(f"  got:      {other.describe()}")
        raise SpecMismatchError("\n".join(lines))

    def describe(self) -> str:
        """One line per layer, joined with ``" | "``."""
        return " | ".join(layer.describe() for layer in self.layers)

    def __str__(self) -> str:
        return f"WeightSpaceSpec({self.describe()})"


@functools.lru_cache(maxsize=64)
def _universal(spec: WeightSpaceSpec, names: tuple[str, ...], permute_io: bool) -> UniversalSpec:
    """:meth:`WeightSpaceSpec.universal`, built once per spec (``names`` are in the key: they set each
    tensor's ``parameter`` but not the spec's equality)."""
    sizes = spec.neuron_sizes
    last = len(sizes) - 1
    io_sets = [NeuronSet(hidden_set_name(l), sizes[l]) for l in (0, last)] if permute_io else []
    sets = sorted([*spec.symmetry_group().sets, *io_sets], key=lambda s: int(s.name[1:]))
    labelled = {s.name for s in sets}

    def axis(layer: int, role: Literal["out", "in"]) -> TensorAxis | None:
        name = hidden_set_name(layer)
        return TensorAxis(name, role, name) if name in labelled else None

    def io(*layers: int) -> tuple[str, ...]:
        return tuple(hidden_set_name(l) if l in (0, last) and hidden_set_name(l) not in labelled else "" for l in layers)

    tensors: list[TensorSpec] = []
    for i, (layer, name) in enumerate(zip(spec.layers, names), start=1):
        kernel: tuple[None, ...] = (None,) * len(layer.kernel)
        prefix = f"{name}." if name else f"layers.{i - 1}."
        tensors.append(TensorSpec(f"W{i}", layer.weight_shape, (axis(i, "out"), axis(i - 1, "in"), *kernel), prefix + "weight",
                                  io=io(i, i - 1) + ("",) * len(layer.kernel)))
        tensors.append(TensorSpec(f"b{i}", (layer.n_out,), (axis(i, "out"),), prefix + "bias", io=io(i)))
    return UniversalSpec(tuple(tensors), tuple(sets))
