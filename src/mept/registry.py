"""Method registry: a method name maps to its config class and its module class.

A method module registers itself with ``@register_method`` on import;
``mept.methods`` imports them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mept.errors import MeptError

if TYPE_CHECKING:
    from mept.config import PromptConfig
    from mept.methods.base import PromptMethod

_METHODS: dict[str, type["PromptMethod"]] = {}


def register_method(cls: type["PromptMethod"]) -> type["PromptMethod"]:
    name = cls.config_class.method
    if not name:
        raise ValueError(f"{cls.__name__}.config_class has no method name")
    known = _METHODS.get(name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        # A second method under one name would silently replace the first (and its saved adapters).
        raise ValueError(f"method name {name!r} is taken by {known.__module__}.{known.__qualname__}")
    _METHODS[name] = cls
    return cls


def method_class(name: str) -> type["PromptMethod"]:
    import mept.methods  # noqa: F401  (registers every method)

    if name not in _METHODS:
        raise MeptError(f"unknown method {name!r}; known methods: {', '.join(method_names())}")
    return _METHODS[name]


def method_names() -> list[str]:
    import mept.methods  # noqa: F401

    return sorted(_METHODS)


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
    return f"{name:<14} prompt length {cfg.prompt_length:>3} (slots per prompted layer), {where}{experts}"
