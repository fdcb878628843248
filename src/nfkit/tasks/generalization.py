"""Generalization prediction: the test accuracy of a network (CNN or transformer) from its weights.

Unterthiner et al. 2020; Zhou et al. 2023 Sec. 4.2; on transformer zoos, Tran et al. 2025 Sec. 6. The model's single output goes through a
sigmoid and is trained with binary cross-entropy against the accuracy in ``[0, 1]`` (the protocol
of the NFN papers); metrics are Kendall τ (primary), R² and MSE on the predicted accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nfkit.spaces.kinds import AnySpec
from nfkit.data.dataset import Compose, Normalization, WeightDataset, network_augmentation
from nfkit.data.zoo_format import Zoo
from nfkit.errors import TaskMismatchError
from nfkit.groups.base import Group
from nfkit.tasks.metrics import kendall_tau, mean_squared_error, r2_score
from nfkit.spaces.features import WeightSpaceFeatures, stack
from nfkit.tasks.loop import predict
from nfkit.tasks.task import Splits, Task
from nfkit.util.files import write_csv_rows
from nfkit.util.plots import pyplot

__all__ = ["GeneralizationTask", "GeneralizationData", "generalization_datasets", "normalised_splits", "rescaled", "RESCALE_RANGE"]

#: Per-neuron factors of the rescaling test (Monomial-NFN's augmentation range U[1, 10³]).
RESCALE_RANGE = (1.0, 1e3)


class GeneralizationTask(Task):
    """Predict test accuracy; select by validation Kendall τ.

    Example:
        >>> task = GeneralizationTask()
        >>> task.primary, task.maximize
        ('kendall_tau', True)
    """

    name = "generalization"
    primary = "kendall_tau"
    maximize = True

    def loss(self, model: nn.Module, features: WeightSpaceFeatures, targets: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(model(features).squeeze(-1), targets.float())

    def evaluate(self, model: nn.Module, data: WeightDataset, batch_size: int = 256) -> dict[str, float]:
        logits, targets = predict(model, data, batch_size)
        predicted = torch.sigmoid(logits.squeeze(-1))
        return {
            "kendall_tau": kendall_tau(predicted, targets),
            "r2": r2_score(predicted, targets),
            "mse": mean_squared_error(predicted, targets),
        }

    def setup(self, zoo: Zoo, model: str, options: dict[str, object], *, augment: bool = False,
              seed: int = 0) -> tuple[nn.Module, Splits]:
        """An invariant model with one output, and the zoo's splits normalised for its group."""
        from nfkit.models import registry

        if "test_accuracy" not in zoo.table:
            raise TaskMismatchError(f"generalization prediction needs a zoo of trained nets with a test_accuracy column; "
                                    f"this is a {zoo.kind} zoo (for INR zoos: --task inr-classification or inr-editing)")
        net = registry.invariant(model, zoo.spec, 1, **options)
        raw = bool(getattr(net, "reads_raw_weights", False))
        return net, normalised_splits(zoo, zoo.column("test_accuracy"), net.group, augment=augment, seed=seed,
                                      normalize=not raw).as_splits()

    def extra_metrics(self, model: nn.Module, data: Splits, zoo: Zoo, seed: int) -> dict[str, float]:
        """The test metrics again on the test nets moved by function-preserving rescalings (``rescaled_test_*``)."""
        scaled = rescaled(data["test"], zoo.spec, seed=seed)
        if scaled is None:
            return {}
        return {f"rescaled_test_{k}": v for k, v in self.evaluate(model, scaled).items()}

    def write_outputs(self, out: Path, model: nn.Module, data: Splits, zoo: Zoo, metrics: dict[str, object]) -> dict[str, object]:
        """``predictions.csv`` (row, true, predicted accuracy) and ``pred_vs_true.png``."""
        outputs, actual = predict(model, data["test"])
        predicted = torch.sigmoid(outputs.squeeze(-1))
        write_csv_rows(out / "predictions.csv", [{"row": int(r), "true": float(a), "predicted": float(p)}
                                                 for r, a, p in zip(zoo.splits["test"], actual, predicted)])
        plt = pyplot()
        if plt is None:
            return {"plot": False}
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(actual.numpy(), predicted.numpy(), s=4, alpha=0.5)
        ax.plot([0, 1], [0, 1], color="grey", linewidth=1)
        ax.set_xlabel("true test accuracy")
        ax.set_ylabel("predicted")
        tau = metrics.get("test_kendall_tau")
        ax.set_title(f"{metrics.get('model')}: τ = {tau if isinstance(tau, float) else float('nan'):.3f}")
        fig.tight_layout()
        fig.savefig(out / "pred_vs_true.png", dpi=120)
        plt.close(fig)
        return {"plot": True}


@dataclass
class GeneralizationData:
    """Train, val and test datasets of a zoo, and the normalisation fitted on train."""

    train: WeightDataset
    val: WeightDataset
    test: WeightDataset
    normalization: Normalization

    def as_splits(self) -> Splits:
        """``{"train", "val", "test"}`` → dataset."""
        return {"train": self.train, "val": self.val, "test": self.test}


def generalization_datasets(
    zoo: Zoo,
    group: Group,
    *,
    target: str = "test_accuracy",
    augment: bool = False,
    seed: int = 0,
) -> GeneralizationData:
    """Datasets for a model respecting ``group``: normalised for that group, optionally augmented with it.

    Normalisation statistics come from the training split and commute with ``group`` (see
    :class:`~nfkit.data.Normalization`), so normalise-then-model keeps the model's symmetry.
    Augmentation (training split only) applies a random element of the *network's* group to each
    network (:func:`~nfkit.data.dataset.network_augmentation`): the model's own group would change nothing.
    """
    return normalised_splits(zoo, zoo.column(target), group, augment=augment, seed=seed)


def normalised_splits(zoo: Zoo, labels: torch.Tensor, group: Group, *, augment: bool = False, seed: int = 0,
                      normalize: bool = True) -> GeneralizationData:
    """The zoo's splits with ``labels``, normalised for ``group`` (statistics of the training split), the training
    split augmented with the network's group when asked. Shared by every task that reads normalised weights.

    ``normalize=False`` keeps the weights as they are (an identity normalisation), for models that
    evaluate the networks: rescaling a tensor changes the function it computes."""
    norm = Normalization.fit(zoo.features[zoo.splits["train"]], group) if normalize else Normalization.identity(zoo.features)
    steps = [network_augmentation(zoo.spec, seed)] if augment else []
    full = WeightDataset(zoo.features, labels)
    return GeneralizationData(
        train=full.subset(zoo.splits["train"], Compose(*steps, norm)),
        val=full.subset(zoo.splits["val"], norm),
        test=full.subset(zoo.splits["test"], norm),
        normalization=norm,
    )


def rescaled(data: WeightDataset, spec: AnySpec, seed: int = 0) -> WeightDataset | None:
    """The dataset with every network moved by a function-preserving rescaling, or ``None`` if the architecture has none.

    ReLU nets: hidden neurons scaled by factors from :data:`RESCALE_RANGE`. Transformers: per-head
    ``GL(d_k) × GL(d_v)`` elements of condition number ≤ 100 and scale in ``RESCALE_RANGE``
    (:meth:`~nfkit.groups.Group.rescalings`). The functions do not change, so a model that respects
    the symmetry must predict the same accuracies.
    """
    scaling = spec.symmetry_group().rescalings(RESCALE_RANGE)
    if scaling is None:
        return None
    generator = torch.Generator().manual_seed(seed)
    features = data.features
    moved = stack([scaling.sample(generator).act(features[i]) for i in range(len(features))])
    return type(data)(moved, data.labels, data.transform)
