"""Every method registers itself on import; importing this package makes them all available."""

from mept.methods import mept, prompt_tuning, ptmoe, ptuning_v2, smop, vfpt  # noqa: F401
from mept.methods.base import PromptMethod  # noqa: F401
from mept.methods.mept import MEPTConfig  # noqa: F401
from mept.methods.prompt_tuning import PromptTuningConfig  # noqa: F401
from mept.methods.ptmoe import PTMoEConfig  # noqa: F401
from mept.methods.ptuning_v2 import PTuningV2Config  # noqa: F401
from mept.methods.smop import SMoPConfig  # noqa: F401
from mept.methods.vfpt import VFPTConfig  # noqa: F401
