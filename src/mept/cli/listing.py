"""``mept methods``: every method and baseline with its trainable parameters on MiniLM (2 classes)."""

from __future__ import annotations

import copy

from mept.core.registry import baseline_names, make_config, method_class, method_names
from mept.errors import MeptError
from mept.model.backbones import load_backbone
from mept.model.prompted import get_model


def method_table(model: str = "minilm", num_labels: int = 2) -> list[tuple[str, str, int | None, int | None]]:
    """(name, kind, trainable, activated prompt tokens) per method, with default settings on ``model``.

    Counts are None where the backbone cannot be loaded (an offline machine without MiniLM): the
    names are still listed.
    """
    names = [(n, "prompt") for n in method_names()] + [(n, "baseline") for n in baseline_names()]
    try:
        backbone = load_backbone(model, "cls", num_labels=num_labels).model
    except MeptError:
        return [(n, kind, None, None) for n, kind in names]
    rows = []
    for name, kind in names:
        report = get_model(copy.deepcopy(backbone), make_config(name)).parameter_report()  # a copy: LoRA edits it
        rows.append((name, kind, report["trainable"], report["activated_prompt_tokens"]))
    return rows


BASELINE_NOTES = {
    "lora": "PEFT LoRA, r=8 on query/value, + the head",
    "dora": "PEFT DoRA, r=8 on query/value, + the head",
    "ia3": "PEFT IA3 on key/value/feed-forward, + the head",
    "full": "every backbone weight (full fine-tuning)",
    "probe": "the head alone, on frozen mean-pooled features",
}


def print_methods() -> None:
    """One line per method: kind, trainable count on MiniLM, activated prompt tokens, and its defaults."""
    rows = method_table()
    print(f"{'method':<15} {'kind':<9} {'trainable on minilm':>20} {'activated prompt tokens':>24}  defaults")
    for name, kind, trainable, tokens in rows:
        count = f"{trainable:,}" if trainable is not None else "?"
        note = describe_method(name) if kind == "prompt" else BASELINE_NOTES.get(name, "")
        print(f"{name:<15} {kind:<9} {count:>20} {tokens if tokens is not None else '?':>24}  {note}")


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
