"""Peak resident memory of the current process, for the memory benchmarks' child scripts.

``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is the wrong number in a child process on
Linux: a process started by ``subprocess`` from a large parent (pytest after the 8192-d
benchmarks: 12 GiB) reports the parent's peak, because the counter survives the fork and
the exec. ``VmHWM`` in ``/proc/self/status`` is the peak of the process's own memory image.
``PEAK_RSS_SOURCE`` is this function's source, to put at the top of a ``python -c`` script.
"""

from __future__ import annotations

import inspect


def peak_rss_bytes() -> int:
    """Peak resident set size of this process in bytes: ``VmHWM`` where /proc has it (Linux),
    else ``ru_maxrss`` (kilobytes on Linux, bytes on macOS)."""
    import resource
    import sys

    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


PEAK_RSS_SOURCE = inspect.getsource(peak_rss_bytes)
