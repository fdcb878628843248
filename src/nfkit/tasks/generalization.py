"""Generalization prediction: the test accuracy of a network (CNN or transformer) from its weights.

Unterthiner et al. 2020; Zhou et al. 2023 Sec. 4.2; on transformer zoos, Tran et al. 2025 Sec. 6. The model's single output goes through a
sigmoid and is trained with binary cross-entropy against the accuracy in ``[0, 1]`` (the protocol
of the NFN papers); metrics are Kendall τ (primary), R² and MSE on the predicted accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nfkit.data.dataset import Compose, Normalization, SymmetryAugmentation, WeightDataset
from nfkit.data.zoo_format import Zoo
from nfkit.errors import TaskMismatchError
from nfkit.groups.base import Group
from nfkit.tasks.metrics import kendall_tau, mean_squared_error, r2_score
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.tasks.loop import Task, predict

__all__ = ["GeneralizationTask", "GeneralizationData", "generalization_datasets", "setup"]


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


@dataclass
class GeneralizationData:
    """Train, val and test datasets of a zoo, and the normalisation fitted on train."""

    train: WeightDataset
    val: WeightDataset
    test: WeightDataset
    normalization: Normalization


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
    Augmentation (training split only) applies a random element of ``group`` to each network.
    """
    labels = zoo.column(target)
    features = zoo.features
    norm = Normalization.fit(features[zoo.splits["train"]], group)
    steps = [SymmetryAugmentation(group, torch.Generator().manual_seed(seed))] if augment else []
    full = WeightDataset(features, labels)
    return GeneralizationData(
        train=full.subset(zoo.splits["train"], Compose(*steps, norm)),
        val=full.subset(zoo.splits["val"], norm),
        test=full.subset(zoo.splits["test"], norm),
        normalization=norm,
    )


def setup(zoo: Zoo, model: str, options: dict[str, object], augment: bool, seed: int):
    """Model (invariant, one output), task, and normalised train/val/test datasets of a CNN or transformer zoo."""
    from nfkit.models import registry

    if "test_accuracy" not in zoo.table:
        raise TaskMismatchError(f"generalization prediction needs a zoo of trained nets with a test_accuracy column; "
                                f"this is a {zoo.kind} zoo (for INR zoos: --task inr-classification or inr-editing)")
    net = registry.invariant(model, zoo.spec, 1, **options)
    data = generalization_datasets(zoo, net.group, augment=augment, seed=seed)  # type: ignore[arg-type]
    return net, GeneralizationTask(), {"train": data.train, "val": data.val, "test": data.test}
