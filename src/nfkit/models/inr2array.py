"""The ``"inr2array"`` family: Inr2Array (Zhou et al., "Neural Functional Transformers", NeurIPS 2023, Sec. 4).

A permutation-invariant latent array for INR weights, learned without labels:

    NFT encoder (equivariant) → Perceiver pooling: K learned latents cross-attend to the *set* of all
    weight and bias entries (each entry's channel vector plus a learned per-tensor embedding)
    → latent array ``(B, K, d)``

Attention over a set does not see the order of its elements, so the latent array is invariant to
hidden-neuron permutations. **Pretraining** (:meth:`Inr2ArrayModel.pretrain`): a hypernetwork
decoder maps the flattened latents to the parameters of a SIREN in one canonical neuron order,
and the loss is the MSE between its rendering and the input INR's rendering (the paper's
``true_target: false``). **Classification**: an MLP head on the flattened latents, trained by the
ordinary loop after pretraining. The model only declares its pretraining
(:attr:`Inr2ArrayModel.pretraining` names the task, :meth:`Inr2ArrayModel.reconstruct` decodes);
the runner schedules it (:mod:`nfkit.tasks.pretraining`), so no model imports the training loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nfkit.groups.base import Group
from nfkit.groups.neurons import permutations
from nfkit.layers.canonical import with_canonical_front
from nfkit.layers.perceiver import PerceiverPooling
from nfkit.models.base import InvariantModel, mlp_head
from nfkit.models.nft_nfn import nft_trunk
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["Inr2ArrayModel"]


class Inr2ArrayModel(InvariantModel):
    """Encoder, latent array and classifier head; the encoder is pretrained by reconstruction.

    Shapes:
        features ``(B, in_channels, …)`` → ``(B, out_features)``; :meth:`latent` → ``(B, K, d)``.
    """

    #: the self-supervised task the runner trains first (:data:`nfkit.tasks.pretraining.PRETRAINING`)
    pretraining = "inr-reconstruction"

    def __init__(
        self,
        spec: WeightSpaceSpec,
        out_features: int = 1,
        *,
        in_channels: int = 1,
        hidden_channels: Sequence[int] = (32, 32),
        latents: int = 16,
        heads: int = 4,
        head_hidden: Sequence[int] = (256,),
        pretrain_epochs: int = 10,
        render_size: int = 8,
        canonical: bool = False,
    ) -> None:
        width = hidden_channels[0] if hidden_channels else 32
        encoder: nn.Module = nft_trunk(spec, in_channels, hidden_channels or (width,), heads, 0.0)
        group: Group = permutations(spec.hidden_sizes)
        if canonical:  # a Canonicalization front: invariant to the network's scalings or sign flips as well
            group, encoder = with_canonical_front(spec, group, encoder)
        super().__init__(spec, group, in_channels)
        self.render_size = render_size
        self.out_features = out_features
        self.encoder = encoder
        self.pool = PerceiverPooling(spec, width, latents, heads)
        self.head = mlp_head(latents * width, head_hidden, out_features)
        self.decoder = mlp_head(latents * width, (256,), spec.zeros(1).flatten().shape[-1])
        self.pretrain_epochs = pretrain_epochs

    def latent(self, features: WeightSpaceFeatures) -> torch.Tensor:
        """The latent array ``(B, K, d)``."""
        return self.pool(self.encoder(features))

    def forward(self, features: WeightSpaceFeatures) -> torch.Tensor:
        self.validate(features)
        return self.head(self.latent(features).flatten(1))

    def reconstruct(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        """The SIREN weights the decoder proposes from the latent array (one canonical neuron order).

        Shapes:
            features of batch B → features of the same spec, batch B, one channel.
        """
        flat = self.decoder(self.latent(features).flatten(1))
        spec = self.spec
        assert isinstance(spec, WeightSpaceSpec)  # the constructor takes MLP specs only
        return WeightSpaceFeatures.unflatten(spec, flat.unsqueeze(1))


register(
    ModelFamily(
        "inr2array",
        "Inr2Array: a permutation-invariant latent array learned by reconstructing the INR (Zhou et al. 2023)",
        invariant=Inr2ArrayModel,
    )
)
