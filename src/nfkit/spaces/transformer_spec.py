"""Typed descriptions of transformer weight spaces.

"Equivariant Neural Functional Networks for Transformers" (Tran et al., ICLR 2025,
arXiv 2410.04209), Sec. 3: per encoder block and per head ``i = 1..h``

* ``W_Q⁽ⁱ⁾, W_K⁽ⁱ⁾ ∈ ℝ^{D×d_k}``, ``W_V⁽ⁱ⁾ ∈ ℝ^{D×d_v}``, ``W_O⁽ⁱ⁾ ∈ ℝ^{d_v×D}``, in the paper's
  row-vector convention ``Q = X W_Q`` (stored as ``query (h, D, d_k)`` … ``output (h, d_v, D)``);
  their biases ``query_bias (h, d_k)``, ``key_bias (h, d_k)``, ``value_bias (h, d_v)``,
  ``output_bias (D,)`` (zeros when the attention has none, as nfkit stores every bias);
* the feed-forward part, an ordinary dense weight space ``D → d_ff → D`` in nfkit's ``(out, in)``
  layout: ``ffn_in (d_ff, D)``, ``ffn_in_bias (d_ff,)``, ``ffn_out (D, d_ff)``, ``ffn_out_bias (D,)``;
* the LayerNorms' ``norm1_weight``, ``norm1_bias``, ``norm2_weight``, ``norm2_bias`` (each ``(D,)``)
  when they are affine.

An optional token embedding and classifier head are ordinary :class:`WeightSpaceSpec` s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, final

import torch

from nfkit.errors import SpecMismatchError
from nfkit.groups.transformer import TransformerFactor, TransformerGroup
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.spaces.transformer_universal import transformer_universal_spec
from nfkit.spaces.universal import UniversalSpec

if TYPE_CHECKING:
    from nfkit.spaces.transformer_features import TransformerFeatures

__all__ = ["AttentionBlockSpec", "TransformerSpec", "spec_from_dict"]

ATTENTION_TENSORS = ("query", "key", "value", "output", "query_bias", "key_bias", "value_bias", "output_bias")
FFN_TENSORS = ("ffn_in", "ffn_in_bias", "ffn_out", "ffn_out_bias")
NORM_TENSORS = ("norm1_weight", "norm1_bias", "norm2_weight", "norm2_bias")


@final
@dataclass(frozen=True)
class AttentionBlockSpec:
    """One encoder block: multi-head self-attention and a feed-forward network.

    Args:
        d_model: D, the width of the token stream.
        heads: h.
        d_k, d_v: per-head query/key and value widths.
        d_ff: D_A, the feed-forward hidden width.
        attention_bias, ffn_bias: whether the projections have biases.
        norm_affine: whether the two LayerNorms have weights and biases.
        residual: whether the block adds its input back (``x + f(x)``).
        norm_first: pre-norm (``f(LN(x))``) or post-norm (``LN(x + f(x))``).
        activation: the feed-forward activation (any elementwise function; ``"relu"``, ``"gelu"``).
        name: the module path it came from (not part of equality).
    """

    d_model: int
    heads: int
    d_k: int
    d_v: int
    d_ff: int
    attention_bias: bool = True
    ffn_bias: bool = True
    norm_affine: bool = True
    residual: bool = True
    norm_first: bool = False
    activation: str = "relu"
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for attr in ("d_model", "heads", "d_k", "d_v", "d_ff"):
            if int(getattr(self, attr)) <= 0:
                raise SpecMismatchError(f"{attr} must be positive, got {getattr(self, attr)}")

    @property
    def stream_permutable(self) -> bool:
        """Whether permuting the D index between attention output and FFN input preserves the function.

        True only without residual connections and with non-affine LayerNorms:
        ``LN(x P) = LN(x) P`` then, while a residual ``x + MHA(x)`` ties that index to the
        block's input, and an affine LayerNorm's ``γ ⊙ · + β`` ties it to fixed coordinates.

        Left out, as in the paper: the permutation between one block's FFN output and the next
        block's input (or the head) is a symmetry of such networks too, and so is positive scaling
        of ReLU FFN neurons; nfkit's transformer group does not contain them. The traced description of
        the same network (:func:`~nfkit.spaces.universal_spec_of`) does.
        """
        return not self.residual and not self.norm_affine

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name → shape (after batch and channel axes), in nfkit's order."""
        h, d, dk, dv, da = self.heads, self.d_model, self.d_k, self.d_v, self.d_ff
        shapes = {
            "query": (h, d, dk),
            "key": (h, d, dk),
            "value": (h, d, dv),
            "output": (h, dv, d),
            "query_bias": (h, dk),
            "key_bias": (h, dk),
            "value_bias": (h, dv),
            "output_bias": (d,),
            "ffn_in": (da, d),
            "ffn_in_bias": (da,),
            "ffn_out": (d, da),
            "ffn_out_bias": (d,),
        }
        if self.norm_affine:
            shapes.update({n: (d,) for n in NORM_TENSORS})
        return shapes

    def bias_free(self) -> tuple[str, ...]:
        """Names of stored biases the source network does not have (always zero)."""
        free: list[str] = []
        if not self.attention_bias:
            free += ["query_bias", "key_bias", "value_bias", "output_bias"]
        if not self.ffn_bias:
            free += ["ffn_in_bias", "ffn_out_bias"]
        return tuple(free)

    @property
    def num_parameters(self) -> int:
        """Real parameters of the block (absent biases not counted)."""
        shapes = self.tensor_shapes()
        return sum(math.prod(s) for n, s in shapes.items() if n not in self.bias_free())

    @property
    def shape_key(self) -> tuple[object, ...]:
        """What decides tensor shapes and which stored biases are real."""
        return (self.d_model, self.heads, self.d_k, self.d_v, self.d_ff, self.norm_affine, self.bias_free())

    def ffn_spec(self) -> WeightSpaceSpec:
        """The feed-forward part as a dense weight space ``D → d_ff → D``."""
        return WeightSpaceSpec.mlp([self.d_model, self.d_ff, self.d_model], "identity")

    def describe(self) -> str:
        """E.g. ``"attention D=16 h=2 d_k=8 d_v=8 ff=32 relu, residual, affine norms, pre-norm"``."""
        parts = [
            f"attention D={self.d_model} h={self.heads} d_k={self.d_k} d_v={self.d_v} ff={self.d_ff} {self.activation}",
            "residual" if self.residual else "no residual",
            "affine norms" if self.norm_affine else "plain norms",
            "pre-norm" if self.norm_first else "post-norm",
        ]
        if not self.attention_bias:
            parts.append("no attention bias")
        if not self.ffn_bias:
            parts.append("no ffn bias")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields (with ``name``)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@final
@dataclass(frozen=True)
class TransformerSpec:
    """A transformer encoder's weight space: blocks, and optionally a token embedding and a head.

    Example:
        >>> block = AttentionBlockSpec(d_model=8, heads=2, d_k=4, d_v=4, d_ff=16)
        >>> spec = TransformerSpec((block, block), head=WeightSpaceSpec.mlp([8, 8, 3]))
        >>> spec.num_parameters
        1299
        >>> spec.symmetry_group().name
        'heads × GL(d_k) × GL(d_v) × FFN perms × classifier perms'
        >>> f = spec.randn(2, channels=3)
        >>> f.blocks[1]["query"].shape, f.head.weights[0].shape
        (torch.Size([2, 3, 2, 8, 4]), torch.Size([2, 3, 8, 8]))
    """

    blocks: tuple[AttentionBlockSpec, ...]
    embedding: WeightSpaceSpec | None = None
    head: WeightSpaceSpec | None = None
    #: the feature container of this space, set by :mod:`nfkit.spaces.transformer_features`
    features_type: ClassVar[type[TransformerFeatures]]

    def __post_init__(self) -> None:
        blocks = tuple(self.blocks)
        object.__setattr__(self, "blocks", blocks)
        if not blocks:
            raise SpecMismatchError("a transformer weight space needs at least one block")
        width = blocks[0].d_model
        for i, block in enumerate(blocks):
            if block.d_model != width:
                raise SpecMismatchError(f"block {i} has d_model {block.d_model}, but block 0 has {width}")
        if self.embedding is not None and self.embedding.layers[-1].n_out != width:
            raise SpecMismatchError(f"the embedding gives {self.embedding.layers[-1].n_out} features; d_model is {width}")
        if self.head is not None and self.head.layers[0].n_in != width:
            raise SpecMismatchError(f"the head takes {self.head.layers[0].n_in} features; d_model is {width}")

    @property
    def d_model(self) -> int:
        """D."""
        return self.blocks[0].d_model

    @property
    def num_blocks(self) -> int:
        """Number of encoder blocks."""
        return len(self.blocks)

    @property
    def stream_permutable(self) -> bool:
        """Whether every block has the attention-output/FFN-input permutation (see the block's docstring)."""
        return all(b.stream_permutable for b in self.blocks)

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor's name and shape (after batch and channels), in nfkit's flattening order."""
        shapes: dict[str, tuple[int, ...]] = {}
        if self.embedding is not None:
            shapes.update(_dense_shapes("embedding", self.embedding))
        for l, block in enumerate(self.blocks):
            shapes.update({f"blocks.{l}.{n}": s for n, s in block.tensor_shapes().items()})
        if self.head is not None:
            shapes.update(_dense_shapes("head", self.head))
        return shapes

    @property
    def num_parameters(self) -> int:
        """Real parameters of the source network."""
        return (
            sum(b.num_parameters for b in self.blocks)
            + (self.embedding.num_parameters if self.embedding is not None else 0)
            + (self.head.num_parameters if self.head is not None else 0)
        )

    @property
    def shape_key(self) -> tuple[object, ...]:
        """What decides tensor shapes."""
        return (
            "transformer",
            tuple(b.shape_key for b in self.blocks),
            None if self.embedding is None else self.embedding.shape_key,
            None if self.head is None else self.head.shape_key,
        )

    def symmetry_group(self) -> TransformerGroup:
        """The largest group nfkit knows this architecture to have (and its models may declare).

        Head permutations × GL(d_k) per head on query/key × GL(d_v) per head on value/output ×
        FFN hidden permutations (Transformer-NFN, Sec. 3); × the attention-output/FFN-input
        permutation where every block has it (:attr:`AttentionBlockSpec.stream_permutable`);
        × the head's hidden-neuron permutations if there is a head with hidden layers.
        """
        factors = {
            TransformerFactor.HEAD_PERMUTATION,
            TransformerFactor.QUERY_KEY_GL,
            TransformerFactor.VALUE_OUTPUT_GL,
            TransformerFactor.FFN_PERMUTATION,
        }
        if self.stream_permutable:
            factors.add(TransformerFactor.STREAM_PERMUTATION)
        if self.head is not None and self.head.hidden_sizes:
            factors.add(TransformerFactor.CLASSIFIER_PERMUTATION)
        return TransformerGroup(self, factors)

    def permutation_group(self) -> TransformerGroup:
        """The factors of :meth:`symmetry_group` that only move entries within a tensor: heads, FFN,
        stream and classifier permutations, not the GL factors."""
        group = self.symmetry_group()
        return group.restrict(f for f in group.factors if f not in (TransformerFactor.QUERY_KEY_GL, TransformerFactor.VALUE_OUTPUT_GL))

    def trivial_group(self) -> TransformerGroup:
        """The identity alone; its negative control permutes the heads."""
        return TransformerGroup(self, ())

    def universal(self) -> UniversalSpec:
        """This space as a :class:`~nfkit.spaces.UniversalSpec` with every set of :func:`transformer_sets`
        (the control's ``blocks.l.inputs`` included): the description the group acts through.

        Per block, in the row-vector layout: ``query (h, D, d_k)`` carries the heads, the inputs (``"in"``)
        and ``query_key`` (``"out"``: ``W_Q A`` is ``Aᵀ`` on that axis); ``key`` the same with
        ``query_key`` ``"in"`` (``W_K A⁻ᵀ``); ``value`` and ``output`` the heads and ``value_output``
        (``"out"`` and ``"in"``); ``output`` and ``output_bias`` produce the stream that ``ffn_in``
        consumes; ``ffn_in`` and ``ffn_in_bias`` produce the FFN neurons that ``ffn_out`` consumes.
        The head's hidden layers are ``head.h1 …``; the embedding and the norms carry no set.

        Example:
            >>> from nfkit.spaces.transformer_spec import AttentionBlockSpec
            >>> spec = TransformerSpec((AttentionBlockSpec(8, 2, 4, 4, 16),)).universal()
            >>> [a.set if a else None for a in spec.tensor("blocks.0.key").axes]
            ['blocks.0.heads', 'blocks.0.inputs', 'blocks.0.query_key']
        """
        return transformer_universal_spec(self)

    def randn(
        self,
        batch_size: int,
        channels: int = 1,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> TransformerFeatures:
        """Standard-normal features (absent biases zero). Shapes: ``(B, C, *shape)`` per tensor."""
        tensors = []
        zero = self.zero_tensors()
        for name, shape in self.tensor_shapes().items():
            x = torch.randn((batch_size, channels, *shape), generator=generator, dtype=dtype)
            if name in zero:
                x.zero_()
            tensors.append(x.to(device) if device is not None else x)
        return self.features_type.from_tensors(self, tensors)

    def zeros(
        self, batch_size: int, channels: int = 1, *, dtype: torch.dtype | None = None, device: torch.device | str | None = None
    ) -> TransformerFeatures:
        """All-zero features."""
        return self.features_type.from_tensors(
            self, [torch.zeros((batch_size, channels, *s), dtype=dtype, device=device) for s in self.tensor_shapes().values()]
        )

    def zero_tensors(self) -> frozenset[str]:
        """Names of stored biases the network does not have."""
        names = {f"blocks.{l}.{n}" for l, b in enumerate(self.blocks) for n in b.bias_free()}
        for part, sub in (("embedding", self.embedding), ("head", self.head)):
            if sub is not None:
                names |= {f"{part}.b{i + 1}" for i, layer in enumerate(sub.layers) if not layer.bias}
        return frozenset(names)

    def unflatten(self, flat: torch.Tensor) -> TransformerFeatures:
        """Inverse of :meth:`TransformerFeatures.flatten`: ``(B, C, P) → features``."""
        return self.features_type.unflatten(self, flat)

    def require_compatible(self, other: object, what: str = "features") -> None:
        """Raise :class:`SpecMismatchError` unless ``other`` has the same tensor shapes."""
        if isinstance(other, TransformerSpec) and other.shape_key == self.shape_key:
            return
        got = other.describe() if hasattr(other, "describe") else repr(other)
        raise SpecMismatchError(f"{what} do not match the weight-space spec:\n  expected: {self.describe()}\n  got:      {got}")

    def describe(self) -> str:
        """The parts, joined with ``" | "``."""
        parts = [] if self.embedding is None else [f"embedding [{self.embedding.describe()}]"]
        parts += [f"block {l}: {b.describe()}" for l, b in enumerate(self.blocks)]
        if self.head is not None:
            parts.append(f"head [{self.head.describe()}]")
        return " | ".join(parts)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description; :func:`spec_from_dict` inverts it."""
        return {
            "type": "transformer",
            "blocks": [b.to_dict() for b in self.blocks],
            "embedding": None if self.embedding is None else self.embedding.to_dict(),
            "head": None if self.head is None else self.head.to_dict(),
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> TransformerSpec:
        """The spec described by :meth:`to_dict`'s output."""
        try:
            blocks = tuple(AttentionBlockSpec(**b) for b in data["blocks"])
            embedding = None if data.get("embedding") is None else WeightSpaceSpec.from_dict(data["embedding"])
            head = None if data.get("head") is None else WeightSpaceSpec.from_dict(data["head"])
        except (KeyError, TypeError) as error:
            raise SpecMismatchError(f"not a transformer spec description ({error!r})") from None
        return TransformerSpec(blocks, embedding, head)

    def __str__(self) -> str:
        return f"TransformerSpec({self.describe()})"


def _dense_shapes(part: str, spec: WeightSpaceSpec) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (w, b) in enumerate(zip(spec.weight_shapes, spec.bias_shapes)):
        shapes[f"{part}.W{i + 1}"] = w
        shapes[f"{part}.b{i + 1}"] = b
    return shapes


def spec_from_dict(data: Mapping[str, Any]) -> WeightSpaceSpec | TransformerSpec | UniversalSpec:
    """A spec from its ``to_dict`` description: dense, transformer or universal (traced)."""
    if data.get("type") == "transformer":
        return TransformerSpec.from_dict(data)
    if data.get("type") == "universal":
        return UniversalSpec.from_dict(data)
    return WeightSpaceSpec.from_dict(data)
