"""INR editing: change an INR's weights so that it renders an edited image (dilated digits).

Zhou et al. 2023, Sec. 4.4 ("stylization"). An equivariant model proposes an update ``Δ`` in the
weight space; the edited INR is ``W + α Δ`` with a learned scalar α (initialised at 0.01, as in the
paper's ``LearnedScale``); the loss is the pixel MSE between the edited INR's rendering and the
dilated image (3×3 grey-level dilation, the paper's MNIST ``dilate`` style). The edited weights are
an ordinary point of the weight space: they load into a real SIREN module and render.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nfkit.data.dataset import Normalization, SymmetryAugmentation, WeightDataset
from nfkit.data.inr_zoo import coordinate_grid, render_sirens
from nfkit.data.sources import load_digits
from nfkit.data.zoo_format import Zoo
from nfkit.errors import TaskMismatchError
from nfkit.models import registry
from nfkit.models.base import EquivariantModel
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.tasks.loop import Task

__all__ = ["dilate", "WeightEditor", "INREditingTask", "setup"]


def dilate(images: torch.Tensor) -> torch.Tensor:
    """3×3 grey-level dilation (a max filter). Shapes: ``(N, 1, H, W) → (N, 1, H, W)``."""
    return F.max_pool2d(images, kernel_size=3, stride=1, padding=1)


class WeightEditor(EquivariantModel):
    """``W ↦ W + α · f(normalise(W))`` for an equivariant model ``f``.

    The normalisation is per-tensor scalars that commute with ``f``'s group and α is a scalar,
    so the editor is equivariant to the same group (the checker tests it).

    Shapes:
        features with one channel → features with one channel.
    """

    def __init__(self, model: EquivariantModel, normalization: Normalization, initial_scale: float = 0.01) -> None:
        super().__init__(model.spec, model.group, 1)
        self.out_channels = 1
        self.model = model
        self.normalization = normalization
        self.scale = nn.Parameter(torch.tensor(initial_scale))

    def forward(self, features: WeightSpaceFeatures) -> WeightSpaceFeatures:
        self.validate(features)
        delta = self.model(self.normalization(features))
        return features + delta * self.scale


class INREditingTask(Task):
    """Edit INRs towards dilated images; select by validation pixel MSE (lower is better)."""

    name = "inr-editing"
    primary = "mse"
    maximize = False

    def __init__(self, height: int = 8, width: int = 8) -> None:
        self.coords = coordinate_grid(height, width)

    def _render(self, features: WeightSpaceFeatures) -> torch.Tensor:
        return render_sirens(features, self.coords)[..., 0]

    def loss(self, model: nn.Module, features: WeightSpaceFeatures, targets: torch.Tensor) -> torch.Tensor:
        return (self._render(model(features)) - targets.flatten(1)).square().mean()

    def evaluate(self, model: nn.Module, data: WeightDataset, batch_size: int = 256) -> dict[str, float]:
        was = model.training
        model.eval()
        errors, before = [], []
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                index = torch.arange(start, min(start + batch_size, len(data)))
                features, targets = data.features[index], data.labels[index].flatten(1)
                errors.append((self._render(model(features)) - targets).square().mean(dim=1))
                before.append((self._render(features) - targets).square().mean(dim=1))
        model.train(was)
        return {"mse": torch.cat(errors).mean().item(), "mse_unedited": torch.cat(before).mean().item()}


def setup(zoo: Zoo, model: str, options: dict[str, object], augment: bool, seed: int):
    """An equivariant editor, the task, and train/val/test datasets (raw INRs, dilated target images)."""
    if zoo.kind != "inr" or "image" not in zoo.table:
        raise TaskMismatchError(f"INR editing needs an INR zoo of the digits (an image column); this is a {zoo.kind} zoo "
                                f"(for CNN and transformer zoos: --task generalization)")
    images = load_digits(test_fraction=0.0).train_images[torch.as_tensor(zoo.table["image"].astype(int))]
    targets = dilate(images)
    net = registry.equivariant(model, zoo.spec, 1, **options)
    editor = WeightEditor(net, Normalization.fit(zoo.features[zoo.splits["train"]], net.group))  # type: ignore[arg-type]
    steps = SymmetryAugmentation(net.group, torch.Generator().manual_seed(seed)) if augment else None
    full = WeightDataset(zoo.features, targets)
    data = {"train": full.subset(zoo.splits["train"], steps), "val": full.subset(zoo.splits["val"]),
            "test": full.subset(zoo.splits["test"])}
    return editor, INREditingTask(images.shape[-2], images.shape[-1]), data
