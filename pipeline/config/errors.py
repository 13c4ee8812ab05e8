"""Configuration errors, phrased for the person who wrote the config."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A configuration problem; the message names the key, the bad value and what is allowed."""


class KeyProblem(ValueError):
    """Raised inside validators to name the offending key precisely:

        `goal.metric`: got 'acuracy'; allowed for multiclass: accuracy, balanced_accuracy, ...
    """

    def __init__(self, key: str, value: Any, allowed: str):
        super().__init__(f"`{key}`: got {value!r}; {allowed}")
        self.message = str(self)
