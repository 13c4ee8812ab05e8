"""Declarative AutoML pipeline: goal -> prepare -> split -> design -> train -> redesign -> validate -> export."""

__version__ = "0.1.0"
