"""INR classification: the class of the image an INR represents, from the INR's weights.

Zhou et al. 2023, Sec. 4.3. An invariant model with one output per class, cross-entropy loss,
accuracy as the metric (primary, for model selection).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nfkit.data.dataset import WeightDataset
from nfkit.data.zoo_format import Zoo
from nfkit.errors import TaskMismatchError
from nfkit.tasks.metrics import accuracy
from nfkit.models import registry
from nfkit.groups.neurons import Factor
from nfkit.spaces.features import WeightSpaceFeatures
from nfkit.spaces.spec import WeightSpaceSpec
from nfkit.tasks.generalization import normalised_splits
from nfkit.tasks.loop import predict
from nfkit.tasks.task import Splits, Task
from nfkit.util.files import write_csv_rows

__all__ = ["INRClassificationTask"]


#: Widths that INR classification needs beyond a family's general defaults, measured on the MNIST INR
#: zoo (README, INR classification): np 0.598 at its default 16 channels, 0.665 at 32; monomial 0.495
#: alone, 0.755 with the canonical front, its layers and an HNP trunk of 32 channels (its ``canonical``).
INR_WIDTHS: dict[str, dict[str, object]] = {"np": {"hidden_channels": [32, 32, 32]},
                                            "monomial": {"trunk_channels": [32, 32, 32]}}


class INRClassificationTask(Task):
    """Predict the image class; select by validation accuracy."""

    name = "inr-classification"
    primary = "accuracy"
    maximize = True
    # every family sits at ln 10 for 5–15 epochs before the loss falls; patience 5 stopped runs there
    default_patience = None
    # with the canonical front, hnp on the MNIST INR zoo goes from 0.57 (20 epochs) to 0.71 (40): still learning at 20
    default_epochs = 40

    def loss(self, model: nn.Module, features: WeightSpaceFeatures, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(features), targets.long())

    def evaluate(self, model: nn.Module, data: WeightDataset, batch_size: int = 256) -> dict[str, float]:
        logits, targets = predict(model, data, batch_size)
        return {"accuracy": accuracy(logits, targets.long()), "cross_entropy": F.cross_entropy(logits, targets.long()).item()}

    def model_defaults(self, zoo: Zoo, model: str) -> dict[str, object]:
        """``canonical=True`` for the families that offer it, on INRs with sign or scaling symmetry.

        SIRENs are sign-symmetric: each INR encodes its image in its own random choice of signs.
        A permutation-only model must learn that invariance from data and, on the MNIST INR zoo
        (3,500 training INRs), does not: np 0.37 → 0.52, hnp 0.33 → 0.57 test accuracy with the
        canonicalisation front (README, INR classification).
        """
        if not isinstance(zoo.spec, WeightSpaceSpec) or model not in registry.available("invariant"):
            return {}
        offered = "canonical" in registry.family(model).options("invariant")
        symmetric = bool(zoo.spec.symmetry_group().factors & {Factor.SIGN_FLIP, Factor.POSITIVE_SCALING})
        defaults: dict[str, object] = {"canonical": True} if offered and symmetric else {}
        return {**defaults, **INR_WIDTHS.get(model, {})}

    def setup(self, zoo: Zoo, model: str, options: dict[str, object], *, augment: bool = False,
              seed: int = 0) -> tuple[nn.Module, Splits]:
        """An invariant model with one output per class, and normalised train/val/test datasets of an INR zoo."""
        if "label" not in zoo.table:
            raise TaskMismatchError(f"INR classification needs an INR zoo with a label column; this is a {zoo.kind} zoo "
                                    f"(for CNN and transformer zoos: --task generalization)")
        labels = zoo.column("label").long()
        classes = int(labels.max()) + 1
        net = registry.invariant(model, zoo.spec, classes, **options)
        raw = bool(getattr(net, "reads_raw_weights", False))
        return net, normalised_splits(zoo, labels, net.group, augment=augment, seed=seed, normalize=not raw).as_splits()

    def write_outputs(self, out: Path, model: nn.Module, data: Splits, zoo: Zoo, metrics: dict[str, object]) -> dict[str, object]:
        """``predictions.csv``: row, true and predicted class of every test INR."""
        outputs, actual = predict(model, data["test"])
        write_csv_rows(out / "predictions.csv", [{"row": int(r), "true": float(a), "predicted": float(p)}
                                                 for r, a, p in zip(zoo.splits["test"], actual, outputs.argmax(dim=-1))])
        return {}
