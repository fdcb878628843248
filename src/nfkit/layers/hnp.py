"""HNP layers: equivariant to permutations of the *hidden* neuron layers only (Zhou et al. 2023, Sec. 3.2).

"Permutation Equivariant Neural Functionals" (NeurIPS 2023). Input neurons (layer 0)
and output neurons (layer L) keep their order, so their index is folded into the
channels: each row j of ``W⁽¹⁾`` becomes one vector over ``n_0·f_1·C`` channels, each
column k of ``W⁽ᴸ⁾`` one over ``n_L·f_L·C``, and ``b⁽ᴸ⁾`` is fully invariant. With
that folding the layer has exactly the NP form of
:mod:`nfkit.layers.permutation_basis`: for example, for the first layer,

    W'⁽¹⁾_{j,:} = A [W⁽¹⁾_{j,:}, b⁽¹⁾_j, W⁽²⁾_{★j}] + B [means of all fields] + β

(with ``W⁽²⁾_{:,j}`` in full instead of ``W⁽²⁾_{★j}`` when L = 2). This is the complete
basis: unlike the reference code, the last layer's column context includes
``b⁽ᴸ⁻¹⁾_k``, an equivariant term it leaves out.

Cost: the first-layer term mixes ``n_0·f·C`` channels into ``n_0·f·C'``, so parameters
grow as ``(n_0 C)²``; for an MNIST MLP (n_0 = 784) at 32 channels one such block is 629 M
entries. ``folded="auto"`` (the default) therefore replaces every block that touches a folded
neuron axis by :class:`~nfkit.layers.folded.FoldedMixer` (rank-R summaries over the folded
entries plus a per-entry channel mixer) when a field folds more than
:data:`~nfkit.layers.folded.FOLDED_AUTO_ENTRIES` entries per channel. Acting on folded axes
only, it keeps the group exactly; ``folded="exact"`` keeps the complete basis at any size.
"""

from __future__ import annotations

from typing import final

from nfkit.layers.folded import DEFAULT_FOLDED_RANK
from nfkit.layers.permutation_basis import PermutationEquivariantLinear, PermutationInvariantPool
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["HNPLinear", "HNPPool"]


@final
class HNPLinear(PermutationEquivariantLinear):
    """HNP-equivariant linear layer (Zhou et al. 2023, Sec. 3.2 and App. B).

    Args:
        spec: the weight space.
        in_channels, out_channels: feature channels C → C'.
        folded: ``"auto"`` (factorise the folded input/output blocks above
            :data:`~nfkit.layers.folded.FOLDED_AUTO_ENTRIES` entries), ``"exact"`` or ``"factorised"``.
        folded_rank: R of the factorised blocks.

    Shapes:
        weights ``(B, C, n_i, n_{i-1}, *kernel) → (B, C', n_i, n_{i-1}, *kernel)``,
        biases ``(B, C, n_i) → (B, C', n_i)``.

    Example:
        >>> from nfkit.spaces import WeightSpaceSpec
        >>> spec = WeightSpaceSpec.mlp([2, 8, 8, 1])
        >>> HNPLinear(spec, 3, 5)(spec.randn(4, 3)).biases[2].shape
        torch.Size([4, 5, 1])
    """

    def __init__(
        self, spec: WeightSpaceSpec, in_channels: int, out_channels: int, *, folded: str = "auto",
        folded_rank: int = DEFAULT_FOLDED_RANK,
    ) -> None:
        super().__init__(spec, in_channels, out_channels, permuted=range(1, spec.num_layers), folded=folded,
                         folded_rank=folded_rank)


@final
class HNPPool(PermutationInvariantPool):
    """HNP-invariant pooling: hidden axes averaged, input and output neurons kept.

    ``W⁽¹⁾`` is averaged over rows (keeps ``n_0·f_1``), ``W⁽ᴸ⁾`` over columns (keeps
    ``n_L·f_L``), hidden weights and biases fully, and ``b⁽ᴸ⁾`` is kept whole.

    With ``folded`` factorising (see :class:`HNPLinear`), a kept input or output index is
    summarised by :data:`~nfkit.layers.folded.POOLED_FOLDED_RANK` learned projections
    (:class:`~nfkit.layers.folded.FoldedProjection`) instead of kept whole.

    Shapes:
        features with C channels → ``(B, C·[(n_0 f_1 + 1) + Σ_mid (f_i + 1) + (n_L f_L + n_L)])`` (exact).
    """

    def __init__(self, spec: WeightSpaceSpec, *, folded: str = "auto") -> None:
        super().__init__(spec, permuted=range(1, spec.num_layers), folded=folded)
