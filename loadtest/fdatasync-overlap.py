#!/usr/bin/env python3
"""Do fdatasync calls on one file overlap on this disk?

Threads each write 8 KiB at their own offset of one preallocated file and
fdatasync it, over and over; prints syncs per second and the mean time per
write + sync for 1, 2 and 3 threads, twice. Only if two threads reach
about twice the syncs of one at the same latency would a journal that
keeps two commits in flight shorten the wait for a commit: a request
waits for the time, not the rate. On the VMs measured (docs/PERFORMANCE.md,
runs L and M) two threads got 1.4-1.9x the syncs at 1.1-1.5x the time
each, and two journal writers lost. Python's os.pwrite and os.fdatasync
release the GIL.

Usage: loadtest/fdatasync-overlap.py [DIR]   (default: the system temp dir;
use the gateway's data dir's file system)
"""

import os
import sys
import tempfile
import threading
import time

SYNCS_PER_THREAD = 1500
BLOCK = b"x" * 8192
REGION = 64 << 20


def main() -> None:
    directory = sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()
    handle, path = tempfile.mkstemp(prefix="fdatasync-overlap-", dir=directory)
    try:
        os.posix_fallocate(handle, 0, 4 * REGION)
        os.fsync(handle)
        for threads in (1, 2, 3, 1, 2, 3):
            started = time.monotonic()
            workers = [
                threading.Thread(target=write_and_sync, args=(handle, index * REGION))
                for index in range(threads)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            elapsed = time.monotonic() - started
            print(
                f"threads={threads} syncs/s={threads * SYNCS_PER_THREAD / elapsed:,.0f} "
                f"mean per write+sync={elapsed / SYNCS_PER_THREAD * 1e6:,.0f} us"
            )
    finally:
        os.close(handle)
        os.unlink(path)


def write_and_sync(handle: int, offset: int) -> None:
    for index in range(SYNCS_PER_THREAD):
        os.pwrite(handle, BLOCK, offset + index * len(BLOCK))
        os.fdatasync(handle)


if __name__ == "__main__":
    main()
