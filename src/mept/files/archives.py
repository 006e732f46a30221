"""What a damaged downloaded archive raises while we read it.

The data that installs from PyPI (the ``vaderSentiment`` and ``bigbench`` source packages) is read straight from
its ``.tar.gz``. A download cut short or corrupted fails in any of several layers -- tar headers, the gzip stream,
zlib, or a plain end of file -- and each reader must turn every one of them into the same one-line "damaged or
truncated; download it again" error. One tuple, so that a reader added later cannot miss a layer.
"""

from __future__ import annotations

import gzip
import tarfile
import zlib

DAMAGED_ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)
