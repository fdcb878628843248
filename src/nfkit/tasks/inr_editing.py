"""INR editing: change an INR's weights so that it renders an edited image (dilated digits).

Zhou et al. 2023, Sec. 4.4 ("stylization"). An equivariant model proposes an update ``Δ`` in the
weight space; the edited INR is ``W + α Δ`` with a learned scalar α (initialised at 0.01, as in the
paper's ``LearnedScale``); the loss is the pixel MSE between the edited INR's rendering and the
dilated image (3×3 grey-level dilation, the paper's MNIST ``dilate`` style). The edited weights are
an ordinary point of the weight space: they load into a real SIREN module and render.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nfkit.data.dataset import Normalization, WeightDataset, network_augmentation
from nfkit.data.generators.sources import load_images
from nfkit.data.zoo_format import Zoo
from nfkit.errors import TaskMismatchError
from nfkit.models import registry
from nfkit.models.base import EquivariantModel
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.render import coordinate_grid, render_sirens
from nfkit.tasks.task import Splits, Task
from nfkit.util.plots import pyplot

__all__ = ["dilate", "WeightEditor", "INREditingTask"]


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
    default_patience = None

    def __init__(self, height: int = 8, width: int = 8) -> None:
        self.height, self.width = height, width
        self.coords = coordinate_grid(height, width)

    def render(self, features: object) -> torch.Tensor:
        """The INRs' images on the task's grid: ``(B, H·W)``."""
        return render_sirens(features, self.coords)[..., 0]

    def loss(self, model: nn.Module, features: WeightSpaceFeatures, targets: torch.Tensor) -> torch.Tensor:
        return (self.render(model(features)) - targets.flatten(1)).square().mean()

    def evaluate(self, model: nn.Module, data: WeightDataset, batch_size: int = 256) -> dict[str, float]:
        was = model.training
        model.eval()
        errors, before = [], []
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                index = torch.arange(start, min(start + batch_size, len(data)))
                features, targets = data.features[index], data.labels[index].flatten(1)
                errors.append((self.render(model(features)) - targets).square().mean(dim=1))
                before.append((self.render(features) - targets).square().mean(dim=1))
        model.train(was)
        return {"mse": torch.cat(errors).mean().item(), "mse_unedited": torch.cat(before).mean().item()}

    def setup(self, zoo: Zoo, model: str, options: dict[str, object], *, augment: bool = False,
              seed: int = 0) -> tuple[nn.Module, Splits]:
        """An equivariant editor and train/val/test datasets (raw INRs, dilated target images); sets the image grid."""
        if zoo.kind != "inr" or "image" not in zoo.table:
            raise TaskMismatchError(f"INR editing needs an INR zoo of the digits (an image column); this is a {zoo.kind} zoo "
                                    f"(for CNN and transformer zoos: --task generalization)")
        images = load_images(zoo.dataset or "digits", test_fraction=0.0).train_images[torch.as_tensor(zoo.table["image"].astype(int))]
        targets = dilate(images)
        net = registry.equivariant(model, zoo.spec, 1, **options)
        editor = WeightEditor(net, Normalization.fit(zoo.features[zoo.splits["train"]], net.group))
        steps = network_augmentation(zoo.spec, seed) if augment else None  # the network's group, not the model's
        full = WeightDataset(zoo.features, targets)
        data = {"train": full.subset(zoo.splits["train"], steps), "val": full.subset(zoo.splits["val"]),
                "test": full.subset(zoo.splits["test"])}
        self.height, self.width = images.shape[-2], images.shape[-1]
        self.coords = coordinate_grid(self.height, self.width)
        return editor, data

    def write_outputs(self, out: Path, model: nn.Module, data: Splits, zoo: Zoo, metrics: dict[str, object]) -> dict[str, object]:
        """``edits.png``: six test INRs, their dilated targets, and the edited INRs' renders."""
        plt = pyplot()
        if plt is None:
            return {"plot": False}
        test = data["test"]
        index = torch.arange(min(6, len(test)))
        features, targets = test.features[index], test.labels[index]
        with torch.no_grad():
            before = self.render(features)
            after = self.render(model.eval()(features))
        fig, axes = plt.subplots(3, len(index), figsize=(1.2 * len(index), 3.8), squeeze=False)
        for column in range(len(index)):
            for row, (image, name) in enumerate(((before, "INR"), (targets.flatten(1), "target"), (after, "edited"))):
                axes[row, column].imshow(image[column].view(self.height, self.width).numpy(), cmap="gray", vmin=-1, vmax=1)
                axes[row, column].set_axis_off()
                if column == 0:
                    axes[row, column].set_title(name, fontsize=7, loc="left")
        fig.tight_layout()
        fig.savefig(out / "edits.png", dpi=120)
        plt.close(fig)
        return {"plot": True}
