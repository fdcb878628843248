"""Run under torchrun by test_training.py: train with DDP and save each rank's final parameters."""

import os

import torch
import torch.distributed as dist

import nfkit.models as models
from nfkit.data.generators.cnn_zoo import CNNZooConfig, generate_cnn_zoo
from nfkit.data.zoo_format import load_zoo
from nfkit.tasks import GeneralizationTask, generalization_datasets
from nfkit.tasks.loop import TrainConfig, fit



def run() -> None:
    dist.init_process_group("gloo")
    out = os.environ["NFKIT_TEST_OUT"]
    if dist.get_rank() == 0:
        generate_cnn_zoo(f"{out}/zoo", CNNZooConfig(size=20, chunk=20, epochs=1, checkpoints=(1,), activations=("relu",)), progress=False)
    dist.barrier()
    zoo = load_zoo(f"{out}/zoo")
    torch.manual_seed(0)
    model = models.invariant("np", zoo.spec, hidden_channels=[4])
    data = generalization_datasets(zoo, model.group)
    fit(model, GeneralizationTask(), data.train, data.val, TrainConfig(epochs=2, patience=None))
    torch.save(model.state_dict(), f"{out}/rank{dist.get_rank()}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    run()
