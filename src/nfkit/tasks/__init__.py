"""Tasks: what is learned from weights and how it is scored, one file each."""

from nfkit.tasks.generalization import GeneralizationTask, generalization_datasets

__all__ = ["GeneralizationTask", "generalization_datasets"]
