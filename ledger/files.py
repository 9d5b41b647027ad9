"""Writing files so that a crash never leaves half of one: write a temporary file beside the
target, fsync it, rename it over the target, fsync the folder. Used for keystores, exports,
checkpoints and receipts alike (server and wallet)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable


def write_atomic(path: str | os.PathLike, data: bytes | str | Iterable[bytes | str], *, mode: int = 0o600,
                 exclusive: bool = False) -> Path:
    """Replace `path` with `data` atomically, the new file created with `mode`.
    `data` may be an iterable of chunks, written as they come (a file too large to hold in memory).
    `exclusive`: refuse (FileExistsError) if the target already exists."""
    target = Path(path)
    chunks = [data] if isinstance(data, (bytes, bytearray, memoryview, str)) else data
    if exclusive and target.exists():
        raise FileExistsError(f"{target} already exists")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # O_CREAT honours the umask; the caller's mode is what counts
        if exclusive and target.exists():
            raise FileExistsError(f"{target} already exists")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(target.parent, os.O_RDONLY)
    except OSError:
        return target
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target
