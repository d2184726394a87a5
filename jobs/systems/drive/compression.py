"""Compressed drive files: the codec a file name's last extension names (`.gz`, `.bz2`,
`.zst`/`.zstd`, `.xz`), as a stream that decompresses while it is read or compresses while it
is written, so a compressed file is streamed with the same bounded memory as a plain one.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import posixpath
from typing import IO, Any, cast

import zstandard

CODECS = {"gz": "gzip", "bz2": "bz2", "zst": "zstd", "zstd": "zstd", "xz": "xz"}

# What a damaged or truncated compressed stream raises while it is read.
ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # gzip.BadGzipFile and bz2's "Invalid data stream" are OSErrors
    EOFError,  # a stream that ends before its end marker
    lzma.LZMAError,
    zstandard.ZstdError,
)


def extension_of(name: str) -> str:
    """The compression extension a file name ends with ('gz', …), '' when none."""
    extension = posixpath.splitext(name)[1].lstrip(".").lower()
    return extension if extension in CODECS else ""


def without(name: str) -> str:
    """The name without its compression extension: `films.csv.gz` → `films.csv`."""
    return posixpath.splitext(name)[0] if extension_of(name) else name


def codec_of(name: str) -> str:
    """The codec a file name's extension names ('gzip', 'bz2', 'zstd', 'xz'), '' when none."""
    return CODECS.get(extension_of(name), "")


class _Decompressing(io.RawIOBase):
    """A decompressing stream over a file, closing both; read-only, forward only."""

    def __init__(self, stream: Any, raw: IO[bytes]) -> None:
        self._stream = stream
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._stream.close()
        finally:
            self._raw.close()
            super().close()


def reading(raw: IO[bytes], codec: str) -> IO[bytes]:
    """`raw` decompressed as it is read; closing the result closes `raw` too."""
    if not codec:
        return raw
    stream: Any
    if codec == "gzip":
        stream = gzip.GzipFile(fileobj=raw, mode="rb")
    elif codec == "bz2":
        stream = bz2.BZ2File(raw, "rb")
    elif codec == "xz":
        stream = lzma.LZMAFile(raw, "rb")  # noqa: SIM115 - closed by _Decompressing
    else:
        # Several frames back to back (`zstd` on a concatenation, or a multi-frame writer).
        stream = zstandard.ZstdDecompressor().stream_reader(
            raw, read_across_frames=True, closefd=False
        )
    return io.BufferedReader(_Decompressing(stream, raw), buffer_size=1 << 20)


def writing(handle: IO[bytes], codec: str) -> IO[bytes]:
    """A stream compressing into `handle`; closing it ends the compressed stream and leaves
    `handle` open (the caller still flushes, syncs and renames it)."""
    if codec == "gzip":
        # No file name nor time in the header: a re-applied change log writes the same bytes.
        return cast(IO[bytes], gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0))
    if codec == "bz2":
        return cast(IO[bytes], bz2.BZ2File(handle, "wb"))
    if codec == "xz":
        return cast(IO[bytes], lzma.LZMAFile(handle, "wb"))
    if codec == "zstd":
        return cast(
            IO[bytes], zstandard.ZstdCompressor(level=3).stream_writer(handle, closefd=False)
        )
    return handle
