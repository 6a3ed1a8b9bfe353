"""harlem's own file descriptors stay out of the standard streams' numbers (0, 1 and 2).

A program may close its stderr (a daemon detaching, a service started without one) and still
write to fd 2 now and then, expecting ``EBADF``. The next file opened takes the lowest free
number: if that is one of harlem's (a spool, a HAR file being written), the program's writes
land in it and corrupt it. Every file harlem opens is moved above 2 when it got a lower number.
"""

import os

__all__ = ["above_std_streams", "open_anonymous"]


def above_std_streams(fd: int) -> int:
    """``fd``, or a duplicate of it numbered 3 or more (close-on-exec) when it was 0, 1 or 2."""
    if fd > 2:
        return fd
    try:
        import fcntl
    except ImportError:  # not POSIX: no such reuse to guard against here
        return fd
    try:
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        os.close(fd)
    return high


def open_anonymous(folder: "str | None", prefix: str) -> "object":
    """A read-write binary temporary file with no name (deleted once created), in ``folder``."""
    import tempfile

    fd, path = tempfile.mkstemp(dir=folder, prefix=prefix)
    try:
        os.unlink(path)
        fd = above_std_streams(fd)
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "w+b")
