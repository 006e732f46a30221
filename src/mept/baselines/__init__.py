"""Baselines in the same harness as the prompt methods: LoRA / DoRA / IA3 (through PEFT), full
fine-tuning, and a linear probe. Each registers itself on import (``mept.core.registry.register_baseline``).
"""

from mept.baselines import full, lora, probe  # noqa: F401
from mept.baselines.base import BaselineConfig, BaselineModel  # noqa: F401
from mept.baselines.full import FullConfig  # noqa: F401
from mept.baselines.lora import DoRAConfig, IA3Config, LoRAConfig  # noqa: F401
from mept.baselines.probe import ProbeConfig  # noqa: F401
