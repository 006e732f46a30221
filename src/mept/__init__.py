"""mept: Mixture-of-Expert Prompt Tuning on frozen transformers.

    backbone = AutoModelForSequenceClassification.from_pretrained(...)
    model = mept.get_model(backbone, mept.MEPTConfig(num_experts=10, prompt_length=10))
    model.print_trainable_parameters()
    model.save_pretrained("out"); model = mept.load(backbone, "out")

    many = mept.MultiAdapterModel.from_runs({"sentiment": "runs/a", "topic": "runs/b"})
    many(input_ids=..., attention_mask=..., adapter_names=["sentiment", "topic", ...])
"""

# Importing the two packages registers every prompt method and baseline (mept.core.registry is a leaf).
import mept.baselines  # noqa: F401
from mept.core.registry import make_config, method_names
from mept.errors import MeptError
from mept.methods import (
    MEPTConfig,
    PromptTuningConfig,
    PTMoEConfig,
    PTuningV2Config,
    SMoPConfig,
    VFPTConfig,
)
from mept.model.prompted import PromptedModel, get_model, load
from mept.multi_adapter import MultiAdapterModel
from mept.version import __version__

__all__ = [
    "MEPTConfig", "PromptTuningConfig", "PTMoEConfig", "PTuningV2Config", "SMoPConfig", "VFPTConfig",
    "PromptedModel", "MultiAdapterModel", "get_model", "load", "make_config", "method_names", "MeptError", "__version__",
]
