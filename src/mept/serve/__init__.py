"""``mept serve``: trained runs over HTTP, one backbone for all, requests batched across adapters.

:mod:`~mept.serve.server` (the command), :mod:`~mept.serve.app` (routes), :mod:`~mept.serve.batcher`
(dynamic batching), :mod:`~mept.serve.limits` (what a server accepts). FastAPI and uvicorn are the
``serve`` extra: ``pip install "mept[serve]"``.
"""
