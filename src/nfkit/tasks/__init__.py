"""Tasks: what is learned from weights and how it is scored, one file each.

Each task module has a ``setup(zoo, model, options, augment, seed) → (model, task, splits)``;
:data:`TASKS` maps the CLI's task names to them.
"""

from nfkit.tasks import generalization, inr_classification, inr_editing
from nfkit.tasks.generalization import GeneralizationTask, generalization_datasets
from nfkit.tasks.inr_classification import INRClassificationTask
from nfkit.tasks.inr_editing import INREditingTask, WeightEditor, dilate

#: Task name → its module's ``setup``.
TASKS = {
    "generalization": generalization.setup,
    "inr-classification": inr_classification.setup,
    "inr-editing": inr_editing.setup,
}

__all__ = [
    "TASKS",
    "GeneralizationTask",
    "INRClassificationTask",
    "INREditingTask",
    "WeightEditor",
    "dilate",
    "generalization_datasets",
]
