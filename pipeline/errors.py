"""Errors phrased for the user; importing this module is cheap (no Keras, no MLflow)."""


class DesignError(ValueError):
    """A design that cannot be built for this input (e.g. its spatial size would collapse)."""


class DataError(ValueError):
    """The data does not fit what the config declares; the message says which row/column/file."""
