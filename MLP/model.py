"""The paper's MLP: Linear(784, N) -> LeakyReLU(0.01) -> Linear(N, 10). Players: the N hidden units ("act[i]")."""
import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, n_hidden: int, n_in: int = 784, n_out: int = 10):
        super().__init__()
        self.fc1 = nn.Linear(n_in, n_hidden)
        self.act = nn.LeakyReLU(0.01)  # lesion site: a unit's activation set to 0
        self.fc2 = nn.Linear(n_hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x.flatten(1))))


def to_inputs(images) -> torch.Tensor:
    """uint8 images (N, 28, 28) -> float pixels / 255, flattened, not standardised (as the paper)."""
    return torch.as_tensor(images).reshape(len(images), -1).float() / 255.0
