"""Many prompt adapters on one frozen backbone, in batches whose rows name their adapter (``adapter_names``)."""

from mept.multi_adapter.model import Adapter, MultiAdapterModel

__all__ = ["Adapter", "MultiAdapterModel"]
