"""Method registry: a method name maps to its config class and its module class.

A method module registers itself with ``@register_method`` on import;
``mept.methods`` imports them all. Baselines that are no prompt method (LoRA through PEFT,
full fine-tuning, a linear probe: :mod:`mept.baselines`) register with ``@register_baseline``
in a second table: ``--method`` accepts both, while :func:`method_names` stays the prompt
methods (the ones every prompt-method test and fixed value covers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mept.errors import MeptError

if TYPE_CHECKING:
    from mept.config import PromptConfig
    from mept.methods.base import PromptMethod

_METHODS: dict[str, type["PromptMethod"]] = {}
_BASELINES: dict[str, type] = {}


def register_method(cls: type["PromptMethod"]) -> type["PromptMethod"]:
    return _register(cls, _METHODS)


def register_baseline(cls: type) -> type:
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


def method_class(name: str) -> type["PromptMethod"]:
    """The class registered under ``name``: a prompt method, or a baseline model class."""
    _import_all()
    found = _METHODS.get(name) or _BASELINES.get(name)
    if found is None:
        raise MeptError(f"unknown method {name!r}; known methods: {', '.join(all_method_names())}")
    return found


def is_baseline(name: str) -> bool:
    """Is ``name`` a baseline (no prompt slots, no routing) rather than a prompt method?"""
    _import_all()
    return name in _BASELINES


def method_names() -> list[str]:
    """The prompt methods."""
    _import_all()
    return sorted(_METHODS)


def baseline_names() -> list[str]:
    """The baselines that run in the same harness (``mept.baselines``)."""
    _import_all()
    return sorted(_BASELINES)


def all_method_names() -> list[str]:
    """Everything ``--method`` accepts: prompt methods, then baselines."""
    return method_names() + baseline_names()


def _import_all() -> None:
    import mept.baselines  # noqa: F401  (registers every baseline)
    import mept.methods  # noqa: F401  (registers every method)


def make_config(name: str, **settings: Any) -> "PromptConfig":
    """Build a method's config from its name and keyword settings (unknown keys are errors)."""
    return method_class(name).config_class.from_dict(settings)


def describe_method(name: str) -> str:
    """One line of ``mept methods``: the method's default prompt length, prompted layers and experts.

    The defaults differ a lot between methods (P-Tuning v2 puts 100 slots at every layer, MEPT 10),
    and they decide cost and ``--max-length`` room; a user should not need ``mept params`` to see them.
    """
    cfg = method_class(name).config_class()
    where = "input layer only" if cfg.layers in ("1", [1]) else f"layers {cfg.layers}"
    experts = f", {getattr(cfg, cfg.experts_field)} experts ({cfg.experts_field})" if cfg.experts_field else ""
    if getattr(cfg, "num_shared", 0) and getattr(cfg, "shared", "off") != "off":
        experts += f" + {cfg.num_shared} shared"
    return f"prompt length {cfg.prompt_length:>3} (slots per prompted layer), {where}{experts}"
