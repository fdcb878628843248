"""Self-supervised pretraining stages a model can declare, scheduled by the runner before its task.

A model names its stage in a ``pretraining`` attribute; :func:`pretrain` trains it with the ordinary
loop on the task's own splits, so models never import the training loop.

* ``"inr-reconstruction"``: Inr2Array (Zhou et al., "Neural Functional Transformers", NeurIPS 2023,
  Sec. 4): the model's :meth:`reconstruct` decodes SIREN weights from its latent array, and the loss
  is the pixel MSE between their rendering and the input INR's own rendering on a ``render_size²``
  grid (the paper's ``true_target: false``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nfkit.data.dataset import WeightDataset
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.render import coordinate_grid, is_siren, render_sirens
from nfkit.tasks.loop import TrainConfig, fit
from nfkit.tasks.task import Task

__all__ = ["INRReconstructionTask", "PRETRAINING", "pretrain"]


class INRReconstructionTask(Task):
    """Reconstruct each INR's rendering from the model's decoded weights; select by validation MSE."""

    name = "inr-reconstruction"
    primary = "mse"
    maximize = False

    def __init__(self, render_size: int) -> None:
        self.coords = coordinate_grid(render_size, render_size)

    def _decoded(self, model: nn.Module, features: object) -> torch.Tensor:
        reconstruct = getattr(model, "reconstruct")  # a model declaring this stage decodes weights
        return render_sirens(reconstruct(features), self.coords)[..., 0]

    def loss(self, model: nn.Module, features: WeightSpaceFeatures, targets: torch.Tensor) -> torch.Tensor:
        return (self._decoded(model, features) - targets).square().mean()

    def evaluate(self, model: nn.Module, data: WeightDataset, batch_size: int = 256) -> dict[str, float]:
        was = model.training
        model.eval()
        with torch.no_grad():
            features = data.features if data.transform is None else data.transform(data.features)
            out = self._decoded(model, features)
        model.train(was)
        return {"mse": (out - data.labels).square().mean().item()}

    def targets(self, data: WeightDataset) -> WeightDataset:
        """The teacher: each INR's own rendering (of the raw weights, before normalisation)."""
        with torch.no_grad():
            images = render_sirens(data.features, self.coords)[..., 0]
        return WeightDataset(data.features, images, data.transform)


#: Stage name → how to build its task from the model and the zoo's image side (None: the model's own).
PRETRAINING: dict[str, Callable[[nn.Module, int | None], INRReconstructionTask]] = {
    "inr-reconstruction": lambda model, side: INRReconstructionTask(side or int(getattr(model, "render_size", 8))),
}


def pretrain(
    model: nn.Module,
    train: WeightDataset,
    val: WeightDataset,
    config: TrainConfig,
    progress: Callable[[str], None] | None = None,
    *,
    render_size: int | None = None,
) -> dict[str, object]:
    """Run the pretraining stage ``model`` declares, if any; return its record for ``metrics.json``.

    ``render_size`` (the side of the images the INRs were fitted to, from the zoo) overrides the
    model's own ``render_size``, so a 28×28 zoo is pretrained on 28×28 renders. ``{}`` for a model without one; ``{"pretraining": "skipped: …"}`` when the weight space cannot
    serve it (nothing to render); else ``{"pretrain_val_mse": …}``. Epochs come from the model's
    ``pretrain_epochs``; batch size, learning rate and seed from ``config``; no early stopping.
    """
    stage = getattr(model, "pretraining", None)
    if stage is None:
        return {}
    spec = getattr(model, "spec", None)
    if not is_siren(spec):
        what = spec.describe() if spec is not None else "this model's input"
        return {"pretraining": f"skipped: {what} is not a SIREN weight space, nothing to render"}
    task = PRETRAINING[stage](model, render_size)
    settings = TrainConfig(epochs=int(getattr(model, "pretrain_epochs", 10)), batch_size=config.batch_size,
                           learning_rate=config.learning_rate, patience=None, seed=config.seed)
    result = fit(model, task, task.targets(train), task.targets(val), settings, progress=progress)
    return {"pretrain_val_mse": result.best_metrics["mse"], "pretrain_render_size": int(task.coords.shape[0] ** 0.5)}
