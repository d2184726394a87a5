"""Where a drive connection's files are: a local folder confined under the drive root, or an
S3-compatible bucket, both through fsspec.

A local folder is checked by its resolved real path: it must lie under `GATEWAY_DRIVE_ROOT`
and never reach the gateway's own files (database, secrets, change logs, stage stores).
Every file listed, read or written is checked again the same way, so a symlink placed inside
the folder cannot lead a job outside it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import fsspec
from django.conf import settings

from jobs.systems.base import LeaseLost


class DriveError(ValueError):
    """A drive connection or path the gateway will not use; the message says why."""


class PathRefused(DriveError):
    """A path that leads outside the drive root or into the gateway's own files."""


@dataclass(frozen=True)
class FileEntry:
    """One file of a listing: its path relative to the connection's folder and its version."""

    path: str  # relative, with / separators
    size: int
    version: str  # mtime (local) or ETag (S3): what tells a changed file

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.path)


# -- confinement ---------------------------------------------------------------------------------
def drive_root() -> Path:
    configured = getattr(settings, "GATEWAY_DRIVE_ROOT", "") or ""
    root = Path(configured) if configured else Path(settings.DATA_DIR) / "drive"
    if not configured:
        root.mkdir(parents=True, exist_ok=True)
    return Path(os.path.realpath(root))


def _gateway_files() -> tuple[Path, Path, list[Path]]:
    """(data dir, the data dir's drive folder, other files the gateway owns outside it)."""
    data = Path(os.path.realpath(settings.DATA_DIR))
    own: list[Path] = []
    database = settings.DATABASES.get("default", {})
    if "sqlite" in str(database.get("ENGINE", "")) and database.get("NAME"):
        name = Path(os.path.realpath(str(database["NAME"])))
        own += [name, Path(f"{name}-wal"), Path(f"{name}-shm"), Path(f"{name}-journal")]
    return data, data / "drive", own


def check_local(path: Path, what: str) -> Path:
    """`path`'s real path, if it is under the drive root and none of the gateway's own files."""
    real = Path(os.path.realpath(path))
    root = drive_root()
    if not real.is_relative_to(root):
        raise PathRefused(f"{what} is outside the drive root (GATEWAY_DRIVE_ROOT).")
    data, drive_folder, own = _gateway_files()
    if real.is_relative_to(data) and not real.is_relative_to(drive_folder):
        raise PathRefused(f"{what} is inside the gateway's data directory.")
    if any(real == item or real.is_relative_to(item) for item in own):
        raise PathRefused(f"{what} is the gateway's own database.")
    return real


def relative_parts(text: str, what: str) -> list[str]:
    """A path given by a job, as parts; `..`, drive letters and NUL are refused outright."""
    raw = (text or "").replace("\\", "/")
    if "\x00" in raw:
        raise PathRefused(f"{what} contains a NUL character.")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise PathRefused(f"{what} '{text}' contains '..'.")
    if parts and len(parts[0]) == 2 and parts[0][1] == ":":
        raise PathRefused(f"{what} '{text}' names a drive.")
    return parts


# -- locations -----------------------------------------------------------------------------------
class Location:
    """A folder of files (local or in a bucket); paths are relative to it, with / separators."""

    fs: Any
    description: str

    def full(self, relative: str) -> str:
        raise NotImplementedError

    def list_files(self, *, subfolders: bool, patterns: list[str]) -> list[FileEntry]:
        raise NotImplementedError

    def open(self, relative: str) -> IO[bytes]:
        return self.fs.open(self.full(relative), "rb")  # type: ignore[no-any-return]

    def read_text(self, relative: str, *, limit: int = 1 << 20) -> str:
        with self.open(relative) as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise DriveError(f"{relative} is larger than {limit} bytes.")
        return data.decode("utf-8-sig")

    def open_atomic(self, relative: str) -> AtomicFile:
        """A file no reader sees before `commit()`; `abort()` leaves nothing behind."""
        raise NotImplementedError

    def write_atomic(self, relative: str, write: Callable[[IO[bytes]], None]) -> None:
        target = self.open_atomic(relative)
        try:
            write(target.handle)
        except BaseException:
            target.abort()
            raise
        target.commit()

    def remove(self, relative: str) -> None:
        if self.fs.exists(self.full(relative)):
            self.fs.rm(self.full(relative))

    def exists(self, relative: str) -> bool:
        return bool(self.fs.exists(self.full(relative)))

    def child(self, relative: str) -> Location:
        raise NotImplementedError


def _matches(path: str, patterns: list[str]) -> bool:
    name = posixpath.basename(path)
    return any(
        fnmatch.fnmatchcase(path if "/" in pattern else name, pattern) for pattern in patterns
    )


class LocalFolder(Location):
    def __init__(self, folder: Path, description: str = "") -> None:
        self.folder = check_local(folder, f"Folder '{folder}'")
        self.fs = fsspec.filesystem("file")
        self.description = description or f"folder {self.folder}"

    def full(self, relative: str) -> str:
        parts = relative_parts(relative, "File path")
        path = self.folder.joinpath(*parts)
        return str(check_local(path, f"File '{relative}'"))

    def child(self, relative: str) -> LocalFolder:
        parts = relative_parts(relative, "Folder")
        return LocalFolder(self.folder.joinpath(*parts), self.description)

    def list_files(self, *, subfolders: bool, patterns: list[str]) -> list[FileEntry]:
        if not self.folder.is_dir():
            raise DriveError(f"Folder {self.folder} does not exist.")
        found: list[FileEntry] = []
        # os.walk does not follow symlinked folders (no loops); a symlinked file is checked
        # by its real path like any other before it is listed.
        for current, folders, files in os.walk(self.folder):
            here = Path(current)
            relative_dir = here.relative_to(self.folder).as_posix()
            if not subfolders:
                folders.clear()
            else:
                folders[:] = sorted(d for d in folders if not d.startswith("."))
            for name in sorted(files):
                relative = name if relative_dir == "." else f"{relative_dir}/{name}"
                if name.startswith(".") or not _matches(relative, patterns):
                    continue
                real = check_local(here / name, f"File '{relative}'")
                stat = real.stat()
                found.append(FileEntry(relative, stat.st_size, str(stat.st_mtime_ns)))
        return sorted(found, key=lambda entry: entry.path)

    def open_atomic(self, relative: str) -> AtomicFile:
        final = Path(self.full(relative))
        final.parent.mkdir(parents=True, exist_ok=True)
        check_local(final.parent, f"Folder of '{relative}'")
        return _LocalAtomicFile(final)


class S3Bucket(Location):
    def __init__(self, fs: Any, bucket: str, prefix: str, description: str) -> None:
        self.fs = fs
        self.bucket = bucket
        self.prefix = "/".join(relative_parts(prefix, "Bucket folder"))
        self.description = description

    def _base(self) -> str:
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    def full(self, relative: str) -> str:
        parts = relative_parts(relative, "File path")
        return "/".join([self._base(), *parts])

    def child(self, relative: str) -> S3Bucket:
        parts = relative_parts(relative, "Folder")
        return S3Bucket(
            self.fs, self.bucket, "/".join([self.prefix, *parts]).strip("/"), self.description
        )

    def list_files(self, *, subfolders: bool, patterns: list[str]) -> list[FileEntry]:
        base = self._base()
        listing = self.fs.find(base, maxdepth=None if subfolders else 1, detail=True)
        found = []
        for path, info in listing.items():
            if info.get("type") == "directory":
                continue
            relative = str(PurePosixPath(path).relative_to(base))
            if posixpath.basename(relative).startswith(".") or not _matches(relative, patterns):
                continue
            version = str(info.get("ETag") or info.get("LastModified") or info.get("mtime", ""))
            found.append(FileEntry(relative, int(info.get("size") or 0), version))
        return sorted(found, key=lambda entry: entry.path)

    def open_atomic(self, relative: str) -> AtomicFile:
        return _S3AtomicFile(self.fs.open(self.full(relative), "wb"))


class FtpFolder(Location):
    """A folder on an FTP server; every path is relative to it (`..` refused, as for local
    folders). The server's own links cannot be seen from here: what it serves under the
    folder is what a job reads."""

    def __init__(self, fs: Any, folder: str, description: str) -> None:
        self.fs = fs
        self.folder = "/" + "/".join(relative_parts(folder, "FTP folder"))
        self.description = description

    def full(self, relative: str) -> str:
        parts = relative_parts(relative, "File path")
        return posixpath.join(self.folder, *parts)

    def child(self, relative: str) -> FtpFolder:
        parts = relative_parts(relative, "Folder")
        return FtpFolder(self.fs, posixpath.join(self.folder, *parts), self.description)

    def list_files(self, *, subfolders: bool, patterns: list[str]) -> list[FileEntry]:
        if not self.fs.isdir(self.folder):
            raise DriveError(f"Folder {self.folder} does not exist on the FTP server.")
        listing = self.fs.find(self.folder, maxdepth=None if subfolders else 1, detail=True)
        found = []
        for path, info in listing.items():
            if info.get("type") == "directory":
                continue
            relative = str(PurePosixPath(path).relative_to(self.folder))
            if any(part.startswith(".") for part in relative.split("/")):
                continue  # hidden files and folders (a writer's files in progress, its state)
            if not _matches(relative, patterns):
                continue
            # MLSD's modification time with the size: what tells a changed file (no ETag).
            version = f"{info.get('modify', '')}:{info.get('size', '')}"
            found.append(FileEntry(relative, int(info.get("size") or 0), version))
        return sorted(found, key=lambda entry: entry.path)

    def open_atomic(self, relative: str) -> AtomicFile:
        final = self.full(relative)
        self.fs.makedirs(posixpath.dirname(final), exist_ok=True)
        return _FtpAtomicFile(self.fs, final)


class AtomicFile:
    handle: IO[bytes]

    def commit(self) -> None:
        raise NotImplementedError

    def commit_unless(self, superseded: Callable[[], bool]) -> None:
        """Commit unless `superseded()` (a later claim took the writer over): then abort and
        raise LeaseLost. An upload cannot be made conditional here, so a claim superseded
        between the check and the commit may still complete one (the same rows)."""
        if superseded():
            self.abort()
            raise LeaseLost("A later claim has taken this writer over: file not written.")
        self.commit()

    def abort(self) -> None:
        raise NotImplementedError


class _LocalAtomicFile(AtomicFile):
    """Written under a hidden temporary name in the same folder, then renamed into place."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self.partial = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.part")
        self.handle = open(self.partial, "wb")  # noqa: SIM115 - closed by commit/abort

    def commit(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.partial, self.final)

    def abort(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)

    def commit_unless(self, superseded: Callable[[], bool]) -> None:
        """Give the file its name without ever replacing a later claim's: linked only where
        no file has the name; one that has it is replaced only while no later claim exists
        (it is then an earlier attempt's, of the same change log)."""
        if superseded():
            self.abort()
            raise LeaseLost("A later claim has taken this writer over: file not written.")
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        try:
            os.link(self.partial, self.final)
        except FileExistsError:
            if superseded():
                self.partial.unlink(missing_ok=True)
                raise LeaseLost(
                    f"A later claim has written {self.final.name}: not replaced."
                ) from None
            os.replace(self.partial, self.final)
            return
        except OSError:  # a filesystem without hard links: the checked rename
            os.replace(self.partial, self.final)
            return
        self.partial.unlink(missing_ok=True)


class _S3AtomicFile(AtomicFile):
    """An S3 object appears only once its upload (or multipart upload) completes."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self._upload: Any = handle

    def commit(self) -> None:
        self.handle.close()

    def abort(self) -> None:
        self._upload.discard()  # aborts a multipart upload; a small one was never sent
        self._upload.closed = True  # so that garbage collection does not upload it


class _FtpAtomicFile(AtomicFile):
    """Uploaded under a hidden temporary name in the same folder, then renamed into place
    (RNFR/RNTO): a reader listing the folder never sees half a file."""

    def __init__(self, fs: Any, final: str) -> None:
        self.fs = fs
        self.final = final
        folder, name = posixpath.split(final)
        self.partial = posixpath.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.part")
        self.handle = fs.open(self.partial, "wb")

    def commit(self) -> None:
        self.handle.close()
        if self.fs.exists(self.final):
            self.fs.rm(self.final)  # not every server renames over an existing file
        self.fs.mv(self.partial, self.final)

    def abort(self) -> None:
        try:
            self.handle.close()
        finally:
            if self.fs.exists(self.partial):
                self.fs.rm(self.partial)


# -- connections ---------------------------------------------------------------------------------
def parse_connection(value: str) -> dict[str, Any]:
    """A Drive connection string: the vendor's JSON object, or a bare local folder."""
    text = (value or "").strip()
    if not text:
        raise DriveError("The drive connection string is empty.")
    if not text.startswith("{"):
        return {"service": "local", "path": text}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DriveError(
            f"The drive connection string is not valid JSON (line {exc.lineno}, "
            f"column {exc.colno}: {exc.msg})."
        ) from None
    if not isinstance(parsed, dict):
        raise DriveError("The drive connection string must be a JSON object.")
    return parsed


def open_location(value: str) -> Location:
    config = parse_connection(value)
    service = str(config.get("service") or "local").strip().lower()
    if service in ("local", "localpath", "file", "folder"):
        path = str(config.get("path") or "").strip()
        if not path:
            raise DriveError('A local drive connection needs "path".')
        folder = Path(path)
        if not folder.is_absolute():
            folder = drive_root().joinpath(*relative_parts(path, "Connection path"))
        else:
            relative_parts(path, "Connection path")  # refuses `..` even where it resolves inside
        return LocalFolder(folder)
    if service in ("awss3", "s3"):
        bucket = str(config.get("bucket") or "").strip().strip("/")
        if not bucket:
            raise DriveError('An S3 drive connection needs "bucket".')
        bucket, _, prefix = bucket.partition("/")
        prefix = "/".join(p for p in (prefix, str(config.get("path") or "")) if p)
        return S3Bucket(_s3_filesystem(config), bucket, prefix, f"bucket {bucket}")
    if service == "ftp":
        host = str(config.get("host") or "").strip()
        if not host:
            raise DriveError('An FTP drive connection needs "host".')
        try:
            port = int(config.get("port") or 21)
        except (TypeError, ValueError):
            raise DriveError(f"FTP port '{config.get('port')}' is not a number.") from None
        remote = str(config.get("path") or "/")
        return FtpFolder(
            _ftp_filesystem(host, port, config), remote, f"FTP folder {remote} on {host}:{port}"
        )
    raise DriveError(
        f"Drive service '{config.get('service')}' is not supported (use 'local', 'awss3' or 'ftp')."
    )


def _ftp_filesystem(host: str, port: int, config: dict[str, Any]) -> Any:
    from fsspec.implementations.ftp import FTPFileSystem  # only FTP connections need ftplib

    try:
        return FTPFileSystem(
            host=host,
            port=port,
            username=str(config.get("username") or "") or None,
            password=str(config.get("password") or "") or None,
            timeout=30,
            skip_instance_cache=True,  # a run sees the folder as it is now, not a cache of it
        )
    except OSError as exc:  # ftplib's error_perm (a refused login) is not an OSError
        raise DriveError(f"FTP server {host}:{port} cannot be reached ({exc}).") from None
    except Exception as exc:
        if type(exc).__module__ == "ftplib":
            # The server's reply (`530 Login incorrect.`), never the password.
            raise DriveError(f"FTP server {host}:{port} refused the login ({exc}).") from None
        raise


def _s3_filesystem(config: dict[str, Any]) -> Any:
    import s3fs

    client: dict[str, Any] = {}
    if config.get("region"):
        client["region_name"] = str(config["region"])
    if config.get("endpointUrl"):
        client["endpoint_url"] = str(config["endpointUrl"])
    # A fresh instance without listing cache: a run must see the bucket as it is now.
    return s3fs.S3FileSystem(
        key=config.get("accessKey") or None,
        secret=config.get("accessSecret") or None,
        anon=not config.get("accessKey"),
        client_kwargs=client,
        skip_instance_cache=True,
        use_listings_cache=False,
    )


def iter_chunks(handle: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := handle.read(size):
        yield chunk
