"""How a Dask LocalCluster starts its worker processes (light: imported before the analysis is).

``forkserver`` (Linux's default here): one clean, single-threaded server process imports
distributed and the processor once; every worker is then forked from it in milliseconds, the
workers of later clusters in the same process too, and a worker exits without tearing down an
interpreter.  ``spawn`` (Dask's default, and ours on macOS and Windows) starts a fresh
interpreter per worker that imports everything again.  Plain ``fork`` of the analysis process
is not offered: that process has threads (Dask's event loop logs from its own), and a worker
forked while one of them held a logging stream's lock deadlocked on its first log line.
"""

from __future__ import annotations

import multiprocessing
import sys

WORKER_STARTS = ("forkserver", "spawn")
DEFAULT_WORKER_START = "forkserver" if sys.platform.startswith("linux") else "spawn"
FORKSERVER_PRELOAD = ["distributed", "processors.tth"]  # what every worker needs, imported once


def start_fork_server() -> None:
    """Start the fork server now (it imports ``FORKSERVER_PRELOAD`` while this process goes on).

    Called early by ``tth-adv run`` so that the server's imports overlap the command's own;
    ``processors.run.local_cluster`` starts it otherwise.  A no-op where it already runs.
    """
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
    forkserver.ensure_running()
