"""What a task is: the loss and metrics the loop needs, and the lifecycle the runner drives.

A task sets itself up from a zoo (the model, the splits), scores a model, adds any metrics beyond
the test split's (generalization's rescaled nets), and writes its own output files (predictions,
plots). :func:`nfkit.tasks.runs.run_task` calls these and never branches on a task's name.
"""

from __future__ import annotations

import abc
from pathlib import Path

import torch
from torch import nn

from nfkit.data.dataset import WeightDataset
from nfkit.data.zoo_format import Zoo
from nfkit.spaces.features import WeightSpaceFeatures

__all__ = ["Task", "Splits"]

#: ``{"train", "val", "test"}`` → dataset.
Splits = dict[str, WeightDataset]


class Task(abc.ABC):
    """What is learned and how it is scored; how it is set up from a zoo and what it writes."""

    name: str
    #: the validation metric that selects the best epoch, and whether higher is better
    primary: str
    maximize: bool
    #: early stopping when the command line does not say (None: off)
    default_patience: int | None = 5
    #: ``nfkit train``'s ``--epochs`` when it is left out
    default_epochs: int = 20

    @abc.abstractmethod
    def loss(self, model: nn.Module, features: WeightSpaceFeatures, targets: torch.Tensor) -> torch.Tensor:
        """A scalar training loss for one batch."""

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, data: WeightDataset, batch_size: int = 256) -> dict[str, float]:
        """Metrics on a whole dataset (model in eval mode, no gradients)."""

    def model_defaults(self, zoo: Zoo, model: str) -> dict[str, object]:
        """Options this task gives ``model`` on ``zoo`` unless the user sets them (recorded in the run's config)."""
        return {}

    def setup(self, zoo: Zoo, model: str, options: dict[str, object], *, augment: bool = False,
              seed: int = 0) -> tuple[nn.Module, Splits]:
        """The registered model ``model`` built for ``zoo``, and its train/val/test datasets.

        Raises :class:`~nfkit.errors.TaskMismatchError` for a zoo the task cannot use.
        """
        raise NotImplementedError(f"the {self.name!r} task is not set up from a zoo")

    def extra_metrics(self, model: nn.Module, data: Splits, zoo: Zoo, seed: int) -> dict[str, float]:
        """Metrics beyond the test split's, recorded in ``metrics.json`` (none by default)."""
        return {}

    def write_outputs(self, out: Path, model: nn.Module, data: Splits, zoo: Zoo, metrics: dict[str, object]) -> dict[str, object]:
        """Write the task's files into the run folder ``out``; return entries to add to the metrics."""
        return {}
