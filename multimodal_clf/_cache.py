"""An in-process cache of frozen-backbone features, bounded in bytes.

With a frozen tower, a row's features depend only on the tower's weights, its
preprocessing and the row's raw input. Caching them per row lets every epoch,
every ``GridSearchCV`` candidate and every fold that shares rows reuse them.
"""

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["FeatureCache", "feature_cache", "row_key"]


def _digest(*parts):
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part if isinstance(part, bytes) else str(part).encode())
        h.update(b"\x00")
    return h.hexdigest()


def row_key(value, modality, *, image_root=None):
    """A key that identifies one raw input (a text or an image value).

    Files are identified by absolute path, size and modification time, so an
    edited file is not served stale features; in-memory images by their bytes.
    Returns None for values that cannot be keyed (they are always recomputed).
    """
    if modality == "text":
        return _digest("text", value) if isinstance(value, str) else None
    if isinstance(value, (str, os.PathLike)):
        path = Path(value)
        if image_root is not None and not path.is_absolute():
            path = Path(image_root) / path
        try:
            stat = path.stat()
        except OSError:
            return None
        return _digest("file", path.resolve(), stat.st_size, stat.st_mtime_ns)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _digest("bytes", bytes(value))
    if isinstance(value, np.ndarray):
        return _digest("array", value.dtype.str, value.shape, value.tobytes())
    if hasattr(value, "tobytes") and hasattr(value, "mode"):
        return _digest("pil", value.mode, value.size, value.tobytes())
    return None


class FeatureCache:
    """Least-recently-used map of (backbone, feature, row key) -> feature vector.

    Each entry also keeps what computing it cost, in seconds, so that a caller
    can tell how much work the cache saved it (see ``seconds_saved``).

    Parameters
    ----------
    max_bytes : int, default=1 GiB
        Entries are evicted, oldest use first, beyond this many bytes.

    Attributes
    ----------
    hits, misses : int
        Lookups that found, and did not find, their key.
    seconds_saved : float
        Sum of the computing cost of every entry served by :meth:`get`: the
        time the callers would have spent without the cache.
    """

    def __init__(self, max_bytes=1 << 30):
        self.max_bytes = max_bytes
        self._entries = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.seconds_saved = 0.0

    def __len__(self):
        return len(self._entries)

    @property
    def nbytes(self):
        """Bytes held now."""
        return self._bytes

    def get(self, key):
        """Return the vector for ``key`` or None, counting hits and misses."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            value, seconds = entry
            self.seconds_saved += seconds
            return value

    def put(self, key, value, seconds=0.0):
        """Store a vector, evicting the least recently used beyond the bound.

        Parameters
        ----------
        key : str
        value : array-like
            The feature vector, stored as float32.
        seconds : float, default=0.0
            What computing this vector cost; added to ``seconds_saved`` each
            time :meth:`get` serves it.
        """
        value = np.ascontiguousarray(value, dtype=np.float32)
        if value.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[0].nbytes
            self._entries[key] = (value, float(seconds))
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes:
                _, (dropped, _) = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self):
        """Drop every entry and reset the counters."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self.hits = self.misses = 0
            self.seconds_saved = 0.0


#: The cache every estimator uses when ``cache_features=True``.
feature_cache = FeatureCache()


def clear_feature_cache():
    """Empty the shared cache of frozen-backbone features."""
    feature_cache.clear()


def backbone_fingerprint(backbone, inputs=("text", "image")):
    """Digest of a backbone's source files and the preprocessing of ``inputs``."""
    parts = [backbone.cache_key(inputs)]
    sources = (
        backbone.source if isinstance(backbone.source, tuple) else (backbone.source,)
    )
    for source in sources:
        folder = Path(str(source))
        if folder.is_dir():
            for file in sorted(folder.iterdir()):
                if file.is_file():
                    stat = file.stat()
                    parts.append(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return _digest(*parts)
