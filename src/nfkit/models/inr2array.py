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
ordinary loop after pretraining. ``nfkit train --task inr-classification --model inr2array`` runs
both, because :func:`nfkit.tasks.runs.run_task` calls any model's ``pretrain`` before fitting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from nfkit.data.dataset import WeightDataset
from nfkit.groups.neurons import permutations
from nfkit.layers.perceiver import PerceiverPooling
from nfkit.models.base import InvariantModel, mlp_head
from nfkit.models.nft_nfn import nft_trunk
from nfkit.models.registry import ModelFamily, register
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec

__all__ = ["Inr2ArrayModel"]




class Inr2ArrayModel(InvariantModel):
    """Encoder, latent array and classifier head; ``pretrain`` learns the encoder by reconstruction.

    Shapes:
        features ``(B, in_channels, …)`` → ``(B, out_features)``; :meth:`latent` → ``(B, K, d)``.
    """

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
    ) -> None:
        super().__init__(spec, permutations(spec.hidden_sizes), in_channels)
        self.render_size = render_size
        self.out_features = out_features
        width = hidden_channels[0] if hidden_channels else 32
        self.encoder = nft_trunk(spec, in_channels, hidden_channels or (width,), heads, 0.0)
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

    def pretrain(
        self, train: WeightDataset, val: WeightDataset, config: object, progress: Callable[[str], None] | None = None
    ) -> dict[str, object]:
        """Self-supervised reconstruction of each INR's rendering on a ``render_size²`` grid.

        Returns the best validation MSE. On a weight space that is not a SIREN (2 inputs, sine
        activations) there is nothing to render: pretraining is skipped, and the returned record
        says so (it lands in the run's ``metrics.json``).
        """
        from nfkit.data.inr_zoo import coordinate_grid, render_sirens
        from nfkit.tasks.loop import TrainConfig, fit

        layers = self.spec.layers
        if self.spec.neuron_sizes[0] != 2 or any(l.kind != "dense" for l in layers) or any(
            a.name != "sine" for a in self.spec.hidden_activations
        ):
            return {"pretraining": f"skipped: {self.spec.describe()} is not a SIREN weight space, nothing to render"}
        coords = coordinate_grid(self.render_size, self.render_size)
        spec = self.spec

        class Reconstruction:
            name, primary, maximize = "inr2array-pretraining", "mse", False

            @staticmethod
            def _decode(model: Inr2ArrayModel, features: WeightSpaceFeatures) -> torch.Tensor:
                flat = model.decoder(model.latent(features).flatten(1))
                return render_sirens(WeightSpaceFeatures.unflatten(spec, flat.unsqueeze(1)), coords)[..., 0]

            def loss(self, model, features, targets):
                return (self._decode(model, features) - targets).square().mean()

            def evaluate(self, model, data, batch_size=256):
                with torch.no_grad():
                    model.eval()
                    out = self._decode(model, data.features if data.transform is None else data.transform(data.features))
                    model.train()
                    return {"mse": (out - data.labels).square().mean().item()}

        def renders(data: WeightDataset) -> WeightDataset:
            # the teacher: each INR's own rendering (of the raw weights, before normalisation)
            with torch.no_grad():
                images = render_sirens(data.features, coords)[..., 0]
            return WeightDataset(data.features, images, data.transform)

        settings = TrainConfig(epochs=self.pretrain_epochs, batch_size=getattr(config, "batch_size", 32),
                               learning_rate=getattr(config, "learning_rate", 1e-3), patience=None,
                               seed=getattr(config, "seed", 0))
        result = fit(self, Reconstruction(), renders(train), renders(val), settings, progress=progress)  # type: ignore[arg-type]
        return {"pretrain_val_mse": result.best_metrics["mse"]}


register(
    ModelFamily(
        "inr2array",
        "Inr2Array: a permutation-invariant latent array learned by reconstructing the INR (Zhou et al. 2023)",
        invariant=Inr2ArrayModel,
    )
)
