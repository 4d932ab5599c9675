"""Base class of every task, in the style of transformers' pipelines."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from pipelines.models.manager import LoadedModel

In = TypeVar("In")
Out = TypeVar("Out")


class Task(ABC, Generic[In, Out]):
    """A task turns plain input into plain output (dicts, lists, numbers): never tensors to the UI."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer

    @abstractmethod
    def preprocess(self, inputs: In) -> Any:
        """Validate and tokenize."""

    @abstractmethod
    def forward(self, batch: Any) -> Any:
        """Run the model (no gradients)."""

    @abstractmethod
    def postprocess(self, outputs: Any) -> Out:
        """Turn model outputs into plain Python data."""

    def __call__(self, inputs: In) -> Out:
        import torch

        batch = self.preprocess(inputs)
        with torch.inference_mode():
            outputs = self.forward(batch)
        return self.postprocess(outputs)
