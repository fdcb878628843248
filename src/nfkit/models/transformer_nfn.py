"""``"transformer-nfn"``: Transformer-NFN (Tran et al., ICLR 2025, Sec. 4–5) for any number of blocks.

Invariant form (the paper's ``InvariantNFN``): equivariant layers
:class:`~nfkit.layers.transformer_nfn.AttentionBlockLinear` with ReLU on the feed-forward,
output-bias and norm tensors only (ReLU on W_Q, W_K, W_V, W_O would break GL equivariance),
then the invariant layer per block with its LayerNorm, concatenated over blocks (the reference
hard-codes two), plus the embedding (flattened: its output index is fixed) and the classifier
head (HNP pooling over its hidden neurons), then an MLP. Declared group: the spec's whole
:meth:`~nfkit.spaces.TransformerSpec.symmetry_group`.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from nfkit.errors import UnknownOptionError, UnsupportedArchitectureError
from nfkit.layers.transformer_network import TransformerLinear, TransformerReadout, WithInput, transformer_trunk
from nfkit.models.base import EquivariantModel, StackedEquivariantModel, StackedInvariantModel
from nfkit.models.registry import ModelFamily, register
from nfkit.models.transformer_nfn_traced import transformer_nfn_traced
from nfkit.spaces.transformer_spec import TransformerSpec
from nfkit.spaces.universal import UniversalSpec

__all__ = ["transformer_nfn", "transformer_nfn_editor"]



def _require_transformer(spec: object) -> TransformerSpec:
    if not isinstance(spec, TransformerSpec):
        raise UnsupportedArchitectureError("transformer-nfn reads transformer weight spaces (TransformerSpec), not dense/conv ones")
    return spec














def transformer_nfn(
    spec: TransformerSpec | UniversalSpec,
    out_features: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (10,),
    invariant_width: int = 10,
    head_hidden: Sequence[int] = (10, 10),
    rank: int | None = None,
    dropout: float = 0.0,
    statistics: bool = False,
    skip: bool = False,
    flat_embedding: bool = True,
) -> StackedInvariantModel:
    """Invariant Transformer-NFN: features → ``(B, out_features)``.

    Defaults are the paper's (channels [10], invariant width 10, head 10-10). ``rank``: see
    :mod:`nfkit.layers.transformer_nfn` (``None`` is the paper's full layer). Beyond the paper:
    ``statistics`` adds :class:`InvariantStatistics` to the readout and ``skip`` lets the readout see
    the raw weights next to the trunk's output (:class:`WithInput`); both keep the whole group.
    ``flat_embedding=False`` drops the paper's flattened-embedding branch (the embedding then
    enters through the statistics only, if those are on): on small zoos its hundreds of raw
    inputs overfit.

    On a traced network (:class:`~nfkit.spaces.UniversalSpec`) with attention blocks inside it
    (``nn.TransformerEncoderLayer``, or ``nn.MultiheadAttention`` and a feed-forward pair): :func:`~nfkit.models.transformer_nfn_traced.transformer_nfn_traced`, these layers on every
    block, and channel maps with UNF's pool on the rest (``skip`` and ``flat_embedding`` are for the
    transformer layout).
    """
    if isinstance(spec, UniversalSpec):
        if skip or not flat_embedding:
            raise UnknownOptionError("transformer-nfn on a traced network takes no skip or flat_embedding: "
                                     "the embedding and head go through channel maps and UNF's pool")
        return transformer_nfn_traced(spec, out_features, in_channels=in_channels, hidden_channels=hidden_channels,
                                      invariant_width=invariant_width, head_hidden=head_hidden, rank=rank,
                                      dropout=dropout, statistics=statistics)
    spec = _require_transformer(spec)
    widths = [in_channels, *hidden_channels]
    trunk: nn.Module = transformer_trunk(spec, widths, rank)
    if skip:
        trunk = WithInput(trunk)
    width = widths[-1] + (in_channels if skip else 0)
    readout = TransformerReadout(spec, width, invariant_width, statistics=statistics, flat_embedding=flat_embedding)
    return StackedInvariantModel.with_head(
        spec, spec.symmetry_group(), in_channels, out_features, trunk=trunk, trunk_width=width, readout=readout,
        head_hidden=head_hidden, head_dropout=dropout,
    )


def transformer_nfn_editor(
    spec: TransformerSpec | UniversalSpec,
    out_channels: int = 1,
    *,
    in_channels: int = 1,
    hidden_channels: Sequence[int] = (10,),
    rank: int | None = None,
) -> EquivariantModel:
    """Equivariant Transformer-NFN: features → features of the same spec with ``out_channels`` channels.

    Transformer layouts only: on a traced network the invariant form reads the encoder layers inside it.
    """
    if isinstance(spec, UniversalSpec):
        raise UnsupportedArchitectureError("transformer-nfn's equivariant form reads transformer layouts; on a traced "
                                           "network use its invariant form, or 'unf' for an equivariant model")
    spec = _require_transformer(spec)
    widths = [in_channels, *hidden_channels]
    return StackedEquivariantModel(
        spec,
        spec.symmetry_group(),
        in_channels,
        out_channels,
        trunk=transformer_trunk(spec, widths, rank),
        readout=TransformerLinear(spec, widths[-1], out_channels, rank=rank),
    )


register(
    ModelFamily(
        "transformer-nfn",
        "Transformer-NFN: equivariant to head permutations × GL(d_k) × GL(d_v) × FFN permutations (Tran et al. 2025)",
        invariant=transformer_nfn,
        equivariant=transformer_nfn_editor,
        spaces=("transformer", "universal"),
    )
)
