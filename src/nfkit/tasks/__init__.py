"""Tasks: what is learned from weights, how it is scored, set up, and written; the loop and the runner.

:data:`TASKS` maps the CLI's task names to task classes; each one owns its lifecycle
(:class:`~nfkit.tasks.task.Task`: ``setup``, ``loss``, ``evaluate``, ``extra_metrics``,
``write_outputs``). :mod:`nfkit.tasks.loop` trains, :mod:`nfkit.tasks.runs` runs a task into a run
folder, :mod:`nfkit.tasks.pretraining` holds the self-supervised stages models can declare.
"""

from nfkit.tasks.generalization import GeneralizationTask, generalization_datasets, rescaled
from nfkit.tasks.inr_classification import INRClassificationTask
from nfkit.tasks.inr_editing import INREditingTask, WeightEditor, dilate
from nfkit.tasks.loop import TrainConfig, TrainResult, fit, predict
from nfkit.tasks.task import Task

#: Task name → task class.
TASKS: dict[str, type[Task]] = {
    "generalization": GeneralizationTask,
    "inr-classification": INRClassificationTask,
    "inr-editing": INREditingTask,
}

__all__ = [
    "TASKS",
    "GeneralizationTask",
    "INRClassificationTask",
    "INREditingTask",
    "Task",
    "TrainConfig",
    "TrainResult",
    "WeightEditor",
    "dilate",
    "fit",
    "generalization_datasets",
    "predict",
    "rescaled",
]
