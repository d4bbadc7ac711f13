"""Housekeeping of a Dask worker process that extracts patches: zarr's decoding threads, and handing freed
memory back to the system between studies."""

from __future__ import annotations

import ctypes
import multiprocessing

import zarr

_CONFIGURED: list[int] = []


def limit_threads(threads: int) -> None:
    """Cap zarr's decoding pool in a worker process (one worker process = ``threads`` cores).

    Only in a process of its own (a Dask worker started by a nanny): threaded workers share the caller's
    process, whose zarr settings are not ours to change. Takes effect before zarr's pool exists.
    """
    if not _CONFIGURED and multiprocessing.current_process().name != "MainProcess":
        zarr.config.set({"threading.max_workers": threads})
        _CONFIGURED.append(threads)



def release_free_memory() -> None:
    """Hand the allocator's free memory back to the system between studies (glibc ``malloc_trim``): a worker
    that keeps freed blocks for reuse within a study should not carry them into the next one."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass
