"""Exceptions whose message is meant to be shown to the user as is."""


class WorkbenchError(Exception):
    """Base class: the message is one clear sentence for the user."""


class ModelLoadError(WorkbenchError):
    """A model reference could not be resolved or loaded."""


class InputError(WorkbenchError):
    """User input (text, file, setting) is invalid."""


class BusyError(WorkbenchError):
    """A single-slot resource (e.g. the trainer) is already in use."""
