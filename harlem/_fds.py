"""harlem's own file descriptors stay out of the standard streams' numbers (0, 1 and 2).

A program may close its stderr (a daemon detaching, a service started without one) and still
write to fd 2 now and then, expecting ``EBADF``. The next file opened takes the lowest free
number: if that is one of harlem's (a spool, a HAR file being written), the program's writes
land in it and corrupt it. Every file harlem opens is moved above 2 when it got a lower number.

Also here, as cheap to import (the agent checks its output when the program starts): whether
an output path can be written at all.
"""

import errno
import os

__all__ = ["above_std_streams", "open_anonymous", "open_stream", "check_writable"]


def check_writable(path: "str | os.PathLike[str]") -> None:
    """Raise ``OSError`` with a plain message when ``path`` cannot be written."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"folder does not exist: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"folder is not writable: {folder}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"is a folder: {os.fspath(path)}")


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


def open_stream(path: str) -> "int | None":
    """A write-only descriptor of ``path`` when it is a stream to write *into* (a character
    device such as ``/dev/null``, or a named pipe), else ``None``.

    harlem writes a HAR file beside its destination and renames it over it, so that no reader
    ever sees half a file. Renamed over ``/dev/null`` (as root: a container, a CI job) or over
    a pipe another process reads, that would replace the device or the pipe with a regular
    file. A block device or a socket is refused.
    """
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:  # nothing there (yet): a regular file will be
        return None
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        # Opened without waiting: a pipe nobody reads is an error (ENXIO), not a program that
        # hangs at its exit; written to as usual once open.
        try:
            fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
                         | getattr(os, "O_NONBLOCK", 0))
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                raise OSError(exc.errno, "a named pipe that nobody reads", path) from None
            raise
        os.set_blocking(fd, True)
        return above_std_streams(fd)
    if stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise OSError(f"not a file harlem writes: {path}")
    return None
