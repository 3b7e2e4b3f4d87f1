"""The digits MLP as a kofn training task: ``kofn train --task examples.digits_task:task``.

The engine runs the rounds, the straggler and the catch-up; the task says what to train.
"""

import numpy as np
import torch
from sklearn.datasets import load_digits


class DigitsTask:
    def __init__(self) -> None:
        X, y = load_digits(return_X_y=True)
        self.X, self.y = torch.tensor(X / 16, dtype=torch.float32), torch.tensor(y)

    def build_model(self) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))

    def partition(self, index: int, count: int):
        rows = np.array_split(np.arange(1500), count)[index]  # the last 297 are held out
        return self.X[rows], self.y[rows]

    def batches(self, data, *, seed: int):
        while True:
            yield data  # full-batch steps

    def loss(self, model, batch):
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    def evaluate(self, model) -> dict[str, float]:
        return {"accuracy": (model(self.X[1500:]).argmax(1) == self.y[1500:]).float().mean().item()}


def task() -> DigitsTask:
    return DigitsTask()
