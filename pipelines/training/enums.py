"""Run statuses and training tasks as string enums (their values are what ``run.json`` stores)."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """The life of a fine-tuning run."""

    STARTING = "starting"
    RUNNING = "running"
    COMPLETE = "complete"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.COMPLETE, RunStatus.STOPPED, RunStatus.FAILED)

    @classmethod
    def parse(cls, value: object, default: RunStatus | None = None) -> RunStatus:
        """The status named ``value``; ``default`` (failed) for anything unknown."""
        try:
            return cls(str(value))
        except ValueError:
            return default or cls.FAILED


class TrainTask(StrEnum):
    """What a run trains: a classification head, a causal language model (instruction or text data), or domain
    adaptation (continued pre-training on raw domain text): ``domain`` with the causal-LM loss on a decoder,
    ``domain-mlm`` with the masked-LM loss on an encoder (a request for ``domain`` on an encoder becomes it)."""

    CLASSIFICATION = "classification"
    CAUSAL_LM = "causal-lm"
    DOMAIN = "domain"
    DOMAIN_MLM = "domain-mlm"

    @property
    def generative(self) -> bool:
        """Whether the run trains a causal LM (its probes and samples are generations)."""
        return self in (TrainTask.CAUSAL_LM, TrainTask.DOMAIN)

    @property
    def domain(self) -> bool:
        return self in (TrainTask.DOMAIN, TrainTask.DOMAIN_MLM)


def task_key(task: str) -> str:
    """The locale key of a task's name (``training.task.causal_lm``)."""
    return "training.task." + str(task).replace("-", "_")


# Statuses whose saved adapter can be loaded as a model.
USABLE = (RunStatus.COMPLETE, RunStatus.STOPPED)
# The model kind a run of each task loads as.
TASK_KINDS = ((TrainTask.CLASSIFICATION, "seq-cls"), (TrainTask.CAUSAL_LM, "causal-lm"),
              (TrainTask.DOMAIN, "causal-lm"), (TrainTask.DOMAIN_MLM, "encoder"))
