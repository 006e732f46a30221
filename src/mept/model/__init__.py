"""The model layer: :class:`~mept.model.prompted.PromptedModel` (prompts in a frozen backbone) and
backbone loading (:mod:`mept.model.backbones`). ``from mept.model.prompted import PromptedModel`` is public.
"""

from mept.model.prompted import PromptedModel, get_model, load

__all__ = ["PromptedModel", "get_model", "load"]
