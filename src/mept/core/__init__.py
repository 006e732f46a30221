"""What every prompt method and baseline is built from: settings (``config``), the router and its
traces (``routing``, ``routed_output``, ``pathways``, ``routing_health``), prompt initialisation,
the adapter file format, the task types, and the method registry (a leaf: it imports no method).

Imports nothing above it but :mod:`mept.files`, :mod:`mept.errors` and :mod:`mept.version`
(the layers are checked by ``lint-imports``; see ``docs/architecture.md``).
"""
