"""NP layers: equivariant to permutations of *every* neuron layer (Zhou et al. 2023, Eq. 2).

"Permutation Equivariant Neural Functionals" (NeurIPS 2023). The NP ("neural
permutation") group permutes each neuron layer ℓ = 0..L independently, inputs and
outputs included. For an MLP the layer computes (★ = mean over that index)

    W'⁽ⁱ⁾_{jk} = d_i W⁽ⁱ⁾_{jk} + [W⁽ⁱ⁾_{★k}, W⁽ⁱ⁻¹⁾_{k★}, b⁽ⁱ⁻¹⁾_k] a_i + [W⁽ⁱ⁾_{j★}, b⁽ⁱ⁾_j, W⁽ⁱ⁺¹⁾_{★j}] c_i
                 + Σ_s (e_{i,s} W⁽ˢ⁾_{★★} + f_{i,s} b⁽ˢ⁾_★) + β_i
    b'⁽ⁱ⁾_j    = [W⁽ⁱ⁾_{j★}, b⁽ⁱ⁾_j, W⁽ⁱ⁺¹⁾_{★j}] g_i + Σ_s (h_{i,s} W⁽ˢ⁾_{★★} + k_{i,s} b⁽ˢ⁾_★) + β'_i

where each coefficient is a channel-mixing matrix and terms that name a missing layer
are absent. For conv layers the kernel entries are folded into channels. The full
derivation (every term is pool → mix → broadcast) is in
:mod:`nfkit.layers.permutation_basis`.

NP is equivariant to a group larger than nfkit's hidden-neuron permutations (input and
output orders too), so its declared group is the hidden permutations; to tell inputs
apart, use :class:`~nfkit.layers.HNPLinear`.
"""

from __future__ import annotations

from typing import final

from nfkit.layers.permutation_basis import PermutationEquivariantLinear, PermutationInvariantPool
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["NPLinear", "NPPool"]


@final
class NPLinear(PermutationEquivariantLinear):
    """NP-equivariant linear layer (Zhou et al. 2023, Eq. 2 and App. B for biases).

    Args:
        spec: the weight space.
        in_channels, out_channels: feature channels C → C'.

    Shapes:
        weights ``(B, C, n_i, n_{i-1}, *kernel) → (B, C', n_i, n_{i-1}, *kernel)``,
        biases ``(B, C, n_i) → (B, C', n_i)``.

    Example:
        >>> from nfkit.spaces import WeightSpaceSpec
        >>> spec = WeightSpaceSpec.mlp([2, 8, 8, 1])
        >>> NPLinear(spec, 3, 5)(spec.randn(4, 3)).weights[1].shape
        torch.Size([4, 5, 8, 8])
    """

    def __init__(self, spec: WeightSpaceSpec, in_channels: int, out_channels: int) -> None:
        super().__init__(spec, in_channels, out_channels, permuted=range(spec.num_layers + 1))


@final
class NPPool(PermutationInvariantPool):
    """NP-invariant pooling: the mean of each weight and bias (per channel and kernel entry).

    Shapes:
        features with C channels → ``(B, C·Σ_i (f_i + 1))`` with ``f_i`` the kernel size of layer i.
    """

    def __init__(self, spec: WeightSpaceSpec) -> None:
        super().__init__(spec, permuted=range(spec.num_layers + 1))
