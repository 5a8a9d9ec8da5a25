"""Leave the process at once when a command is done.

Once torch is loaded, the interpreter's own shutdown (freeing every module, torch's and
OpenMP's destructors) takes 0.5-0.7 s on a 2-core machine: a fifth of a cold `segtool
segment`. Nothing in it matters to a command that has finished, so the console script does
the parts that do matter (the exit handlers Python and its libraries registered, the
standard streams) and then ends the process without the rest.

It only does so when no other thread of ours is still running: a non-daemon thread is work
in flight, and the normal exit waits for it.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading


def exit_code(code: object) -> int:
    """The status `sys.exit(code)` would give: None is 0, an int is itself, anything else (a
    message) is printed to stderr and is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def others_running() -> bool:
    """Whether a thread other than the main one, not a daemon, is still alive."""
    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())


def flush_streams() -> None:
    """Python's standard streams, then C's (a library may have printed through them)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a reader that went away (`| head`) or a closed stream
            pass
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to reach (not a POSIX system): nothing to flush
        pass


def leave(code: object) -> None:
    """End the process with `code` as `sys.exit` would, skipping the interpreter's teardown when
    that is safe (no thread of ours still running); otherwise exit normally."""
    status = exit_code(code)
    if others_running():
        sys.exit(status)
    atexit._run_exitfuncs()  # logging's flush, multiprocessing's children, tempfile's finalizers
    flush_streams()
    os._exit(status)
