"""Method registry: a method name maps to its config class and its module class.

A method module registers itself with ``@register_method`` when it is imported; ``mept.methods``
and ``mept.baselines`` import theirs, and ``mept/__init__`` imports both packages once (as PEFT's
``peft/tuners/__init__`` does), so every name is known once ``mept`` is imported and this module
imports no method: it is a leaf. Baselines that are no prompt method (LoRA through PEFT,
full fine-tuning, a linear probe: :mod:`mept.baselines`) register with ``@register_baseline``
in a second table: ``--method`` accepts both, while :func:`method_names` stays the prompt
methods (the ones every prompt-method test and fixed value covers).
"""

from __future__ import annotations

from typing import Any, TypeVar

from mept.core.config import PromptConfig
from mept.errors import MeptError

_METHODS: dict[str, type] = {}  # name -> a PromptMethod subclass (mept.methods)
_BASELINES: dict[str, type] = {}  # name -> a BaselineModel subclass (mept.baselines)
T = TypeVar("T", bound=type)


def register_method(cls: T) -> T:
    return _register(cls, _METHODS)


def register_baseline(cls: T) -> T:
    """Register a baseline model class (``config_class`` names it); see :mod:`mept.baselines`."""
    return _register(cls, _BASELINES)


def _register(cls: type, table: dict[str, type]) -> type:
    name = cls.config_class.method
    if not name:
        raise ValueError(f"{cls.__name__}.config_class has no method name")
    known = _METHODS.get(name) or _BASELINES.get(name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        # A second method under one name would silently replace the first (and its saved adapters).
        raise ValueError(f"method name {name!r} is taken by {known.__module__}.{known.__qualname__}")
    table[name] = cls
    return cls


def method_class(name: str) -> type:
    """The class registered under ``name``: a prompt method, or a baseline model class."""
    found = _METHODS.get(name) or _BASELINES.get(name)
    if found is None:
        raise MeptError(f"unknown method {name!r}; known methods: {', '.join(all_method_names())}")
    return found


def is_baseline(name: str) -> bool:
    """Is ``name`` a baseline (no prompt slots, no routing) rather than a prompt method?"""
    return name in _BASELINES


def method_names() -> list[str]:
    """The prompt methods."""
    return sorted(_METHODS)


def baseline_names() -> list[str]:
    """The baselines that run in the same harness (``mept.baselines``)."""
    return sorted(_BASELINES)


def all_method_names() -> list[str]:
    """Everything ``--method`` accepts: prompt methods, then baselines."""
    return method_names() + baseline_names()


def make_config(name: str, **settings: Any) -> PromptConfig:
    """Build a method's config from its name and keyword settings (unknown keys are errors)."""
    return method_class(name).config_class.from_dict(settings)
