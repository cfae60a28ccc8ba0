"""Errors of the dataset package."""

from __future__ import annotations

import errno


class DatasetError(ValueError):
    """A dataset that is missing, malformed or does not match what the caller expects."""


class DatasetStorageError(OSError):
    """The disk refused a write (full, read-only, not a directory, no permission). Recording
    must stop; episodes committed before stay intact, the one in progress stays in the journal."""

    def __str__(self) -> str:
        return str(self.strerror)


_STORAGE_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a path component is not a directory",
    errno.EFBIG: "the file is too large",
    errno.EIO: "an I/O error occurred",
}


def storage_error(exc: OSError, what: str) -> DatasetStorageError:
    """Wrap an ``OSError`` from writing ``what`` into a clear :class:`DatasetStorageError`."""
    reason = _STORAGE_ERRNOS.get(exc.errno or 0, exc.strerror or str(exc))
    err = DatasetStorageError(exc.errno, f"cannot write {what}: {reason} ({exc})")
    err.__cause__ = exc
    return err
