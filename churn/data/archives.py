"""Bronze archives -> plain Bronze CSVs, the step before the ingest reads them.

Kaggle distributes every file of the dump as `<name>.csv.7z`, inside the competition's zip. Any `.zip`,
`.7z` or `.csv.gz` under `bronze/` is unpacked here, streaming (a block at a time, never a whole member in
memory, through the lake's file objects on a local disk and S3 alike), into plain CSVs named by the
member's base name. A Kaggle file goes to `bronze/` (`bronze/members_v3.csv`), wherever its archive is; a
daily drop's CSV stays in its folder `bronze/<table>/dt=YYYY-MM-DD/`; any other CSV stays beside its
archive, with a warning that the ingest does not read it. A zip's members may be `*.csv`, `*.csv.gz`,
`*.csv.7z` or `*.csv.zip` (each holding that one CSV); other members, Mac metadata (`__MACOSX/`, `._*`)
included, are skipped and logged. A member's folders are dropped; one whose path leaves the archive
(`../x.csv`, `/x.csv`) is unpacked by its base name too, with a warning. The ingest then reads the CSVs as
any plain file, so quarantine and manifests name the CSV and its lines.

Every archive's member names (zip directory, 7z headers) are read before anything is written, and a CSV
that two archives would yield, or that exists but was not unpacked from an archive, is refused up front
rather than overwritten (which one is right is the user's call). An archive is unpacked whole or not at
all: its members are written under temporary names (which the ingest does not pick up) and renamed only
once every member has been read and checked, so a truncated, corrupt, encrypted or unsupported archive is
an `ArchiveError` naming the archive and the member and leaves no partial CSV. What was unpacked is kept
in `bronze/_unpacked.json` (the archive's size and stamp, each member's target and size): a rerun unpacks
nothing.
"""

from __future__ import annotations

import gzip
import logging
import lzma
import posixpath
import re
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import py7zr
import py7zr.exceptions
import py7zr.io

from churn.data import kkbox
from churn.data.ingest import _DAILY, IngestError
from churn.lake import Lake
from churn.logs import Progress

log = logging.getLogger(__name__)

STATE = "bronze/_unpacked.json"
CHUNK = 1 << 20  # bytes copied at a time from a zip or gzip member
_ARCHIVE = re.compile(r"\.(zip|7z|csv\.gz)$")
_MEMBER = re.compile(r"\.csv(\.gz|\.7z|\.zip)?$")  # the zip members unpacked: a CSV, or an archive of one
_CSV = re.compile(r"\.csv$")  # the members unpacked from a 7z, or from an archive inside a zip
_PACKED = re.compile(r"\.(gz|7z|zip)$")
_TEMPORARY = ".unpacking-"
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# What a truncated or corrupt archive raises, depending on where the damage is.
_BROKEN = (
    zipfile.BadZipFile,
    py7zr.exceptions.ArchiveError,
    lzma.LZMAError,
    zlib.error,
    EOFError,
    OSError,
)
# What an archive we cannot read raises: encrypted, or made with a method the readers lack (deflate64...).
_ENCRYPTED = (py7zr.exceptions.PasswordRequired,)
_UNSUPPORTED = (py7zr.exceptions.UnsupportedCompressionMethodError, NotImplementedError)


class ArchiveError(IngestError):
    """A truncated, corrupt, encrypted, unsupported or conflicting archive in Bronze; the message names
    the archive and member."""


class _EncryptedError(Exception):
    """A zip member with the encryption flag (zipfile itself would raise a bare RuntimeError)."""


@dataclass(frozen=True)
class Unpacked:
    """One CSV written from an archive member."""

    archive: str  # lake-relative
    member: str  # its name inside the archive, nested names joined by " / "
    target: str  # the lake-relative CSV the ingest reads
    size: int


@dataclass
class UnpackReport:
    """What a pass over Bronze did: CSVs written, archives already unpacked, members skipped."""

    unpacked: list[Unpacked] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        """The unpacked CSVs as manifest entries."""
        return [asdict(u) for u in self.unpacked]


def find_archives(lake: Lake) -> list[str]:
    """The archives under `bronze/` (sorted), never our own temporary files."""
    return [p for p in lake.find("bronze") if _ARCHIVE.search(p) and _TEMPORARY not in p]


def unpack_bronze(lake: Lake) -> UnpackReport:
    """Unpack every Bronze archive not unpacked before (or whose CSVs were removed or changed since),
    after checking from the member names alone that no two of them, or a plain CSV, collide."""
    state: dict[str, Any] = lake.read_json(STATE) if lake.exists(STATE) else {}
    report = UnpackReport()
    archives = find_archives(lake)
    pending: list[_Archive] = []
    for path in archives:
        archive = _Archive(lake, path)
        known = state.get(path)
        if (
            known
            and (known["size"], known["stamp"]) == (archive.size, archive.stamp)
            and _intact(lake, known)
        ):
            report.skipped.append(path)
        else:
            pending.append(archive)
    for archive in pending:
        archive.read_plan()
    _check_conflicts(lake, state, archives, pending)
    for archive in pending:
        members = archive.unpack()
        taken = {m.target for m in members}
        # CSVs of an archive no longer in Bronze are now this one's: forget the old archive.
        state = {a: e for a, e in state.items() if a in archives or not _targets(e) & taken}
        recorded = [{"member": m.member, "target": m.target, "size": m.size} for m in members]
        state[archive.path] = {"size": archive.size, "stamp": archive.stamp, "members": recorded}
        lake.write_json(STATE, state)
        report.unpacked += members
        report.ignored += archive.ignored
        if archive.ignored:
            log.info("%s: members skipped (no CSV, or Mac metadata): %s", lake.uri(archive.path),
                     ", ".join(archive.ignored))  # fmt: skip
    return report


def _targets(entry: dict[str, Any]) -> set[str]:
    """The CSVs recorded for one archive in the state."""
    return {m["target"] for m in entry["members"]}


def _intact(lake: Lake, entry: dict[str, Any]) -> bool:
    """True when every CSV recorded for an archive is still there with the size it was unpacked to."""
    return all(lake.exists(m["target"]) and lake.size(m["target"]) == m["size"] for m in entry["members"])


def _check_conflicts(lake: Lake, state: dict[str, Any], archives: list[str], pending: list[_Archive]) -> None:
    """Refuse, before anything is written, a CSV two archives in Bronze would yield, and one that exists
    but was never unpacked (a CSV of an archive since removed may be replaced)."""
    redone = {a.path for a in pending}
    owners = {t: a for a, e in state.items() if a in archives and a not in redone for t in _targets(e)}
    recorded = set().union(*(_targets(e) for e in state.values()))
    for archive in pending:
        for target in archive.plan.values():
            if target in owners:
                raise ArchiveError(
                    f"{lake.uri(target)} would be unpacked from both {lake.uri(owners[target])} and "
                    f"{lake.uri(archive.path)}: keep one of them; nothing was unpacked"
                )
            owners[target] = archive.path
            if target not in recorded and lake.exists(target):
                raise ArchiveError(
                    f"{lake.uri(target)} already exists and was not unpacked from {lake.uri(archive.path)}: "
                    "remove one of them (the CSV or the archive), or remove both and put back the one to "
                    "ingest; nothing was unpacked"
                )


def _wanted(name: str, pattern: re.Pattern[str]) -> bool:
    """A member to unpack: its name matches, and it is no Mac metadata (`__MACOSX/`, `._name`)."""
    return (
        bool(pattern.search(name))
        and "__MACOSX" not in name.split("/")
        and not posixpath.basename(name).startswith("._")
    )


def _check_zip_member(info: zipfile.ZipInfo) -> None:
    """Raise what zipfile would only raise on reading (or as a bare RuntimeError, for encryption)."""
    if info.flag_bits & 0x1:
        raise _EncryptedError(info.filename)
    if info.compress_type not in _ZIP_METHODS:
        raise NotImplementedError(f"zip compression method {info.compress_type}")


class _Archive:
    """One Bronze archive: the CSVs it yields, planned from its member names, then written under
    temporary names and all renamed, or all removed."""

    def __init__(self, lake: Lake, path: str) -> None:
        self.lake, self.path = lake, path
        self.size, self.stamp = lake.size(path), lake.stamp(path)
        self.folder = posixpath.dirname(path)
        self.plan: dict[str, str] = {}  # member (as named in the archive) -> the CSV it yields
        self.ignored: list[str] = []
        self.where: list[str] = []  # the enclosing members being read (nested archives)
        self.current: str | None = None  # the CSV member being written
        self.temporaries: dict[str, str] = {}  # target -> temporary name
        self.members: list[Unpacked] = []
        self.stack = ExitStack()

    def member(self) -> str:
        """The member being read, nested names joined (empty before the first)."""
        return " / ".join([*self.where, *([self.current] if self.current else [])])

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Any failure of the readers as an ArchiveError naming the archive, the member and what to do."""
        try:
            yield
        except ArchiveError:
            raise
        except (*_ENCRYPTED, _EncryptedError):
            raise self._error(
                "is encrypted (password-protected)", f"{self._by_hand()} with its password"
            ) from None
        except _UNSUPPORTED as error:
            detail = getattr(error, "message", None) or str(error)
            raise self._error(f"uses a compression method not supported here ({detail})",
                              f"{self._by_hand()} (e.g. with `7z x`)") from None  # fmt: skip
        except _BROKEN as error:
            detail = f"{type(error).__name__}: {error}"
            raise self._error(
                f"cannot be unpacked, truncated or corrupt ({detail})", "download it again"
            ) from None

    def _by_hand(self) -> str:
        return f"unpack it by hand into {self.lake.uri('bronze')}/"

    def _error(self, problem: str, advice: str) -> ArchiveError:
        """The error for the member being read; nothing of the archive is published after it."""
        where = f" member {self.member()}" if self.member() else ""
        return ArchiveError(
            f"{self.lake.uri(self.path)}{where}: {problem}; nothing was unpacked from it: {advice}"
        )

    def _target(self, member: str) -> str:
        """Where a member's CSV goes (see the module's docstring); odd paths and unread CSVs are logged."""
        name = posixpath.basename(member.replace("\\", "/"))
        if member.startswith(("/", "\\")) or ".." in re.split(r"[/\\]", member):
            log.warning("%s member %s: a path outside the archive, unpacked as %s", self.lake.uri(self.path),
                        member, name)  # fmt: skip
        daily = _DAILY.match(f"{self.folder}/{name}")
        if daily and daily["table"] in kkbox.TABLES:
            return f"{self.folder}/{name}"
        if name in kkbox.DUMP_FILES:
            return f"bronze/{name}"
        target = f"{self.folder}/{name}"
        log.warning("%s member %s: unpacked to %s, not read by the ingest (no Kaggle file name, no daily "
                    "drop bronze/<table>/dt=YYYY-MM-DD/)", self.lake.uri(self.path), member,
                    self.lake.uri(target))  # fmt: skip
        return target

    def _add(self, member: str, csv_name: str) -> None:
        """Plan one member; two yielding one CSV are refused."""
        target = self._target(csv_name)
        if target in self.plan.values():
            raise ArchiveError(
                f"{self.lake.uri(self.path)}: two members unpack to {target}; unpack it by hand"
            )
        self.plan[member] = target

    def read_plan(self) -> None:
        """Read the member names (zip directory, 7z headers), nothing else: the CSVs this archive yields."""
        name = posixpath.basename(self.path)
        with self._errors(), self.lake.open(self.path) as handle:
            if name.endswith(".gz"):  # one member, named by the file's name
                self._add(name.removesuffix(".gz"), name.removesuffix(".gz"))
            elif name.endswith(".zip"):
                with zipfile.ZipFile(handle) as archive:
                    for info in archive.infolist():
                        self.where = [info.filename]
                        if info.is_dir():
                            continue
                        if not _wanted(info.filename, _MEMBER):
                            self.ignored.append(info.filename)
                            continue
                        _check_zip_member(info)
                        self._add(info.filename, _PACKED.sub("", info.filename))
                    self.where = []
            else:
                with py7zr.SevenZipFile(handle, "r") as archive:
                    if archive.needs_password():
                        raise _EncryptedError(name)
                    for info in archive.list():
                        if info.is_directory:
                            continue
                        if _wanted(info.filename, _CSV):
                            self._add(info.filename, info.filename)
                        else:
                            self.ignored.append(info.filename)

    def unpack(self) -> list[Unpacked]:
        """Unpack the planned members whole: publish their CSVs only when every one was read; else none."""
        name = posixpath.basename(self.path)
        committed = False
        try:
            with self._errors(), self.lake.open(self.path) as handle:
                if name.endswith(".gz"):
                    with gzip.GzipFile(fileobj=handle, mode="rb") as stream:
                        [(member, target)] = self.plan.items()
                        _copy(stream, self.open(target, None, member))
                elif name.endswith(".zip"):
                    with zipfile.ZipFile(handle) as archive:
                        for member, target in self.plan.items():
                            self.where = [member]
                            with archive.open(member) as stream:
                                self._unpack_member(stream, archive.getinfo(member), target)
                        self.where = []
                else:
                    with py7zr.SevenZipFile(handle, "r") as archive:
                        sizes = {f.filename: f.uncompressed for f in archive.list()}
                        archive.extractall(factory=_SevenZipWriters(self, self.plan, sizes))
            self.stack.close()
            for target, temporary in self.temporaries.items():
                self.lake.move(temporary, target)
                log.info("unpacked %s -> %s", self.lake.uri(self.path), self.lake.uri(target))
            committed = True
        finally:
            self.stack.close()
            if not committed:
                for temporary in self.temporaries.values():
                    self.lake.remove(temporary)
        return self.members

    def _unpack_member(self, stream: IO[bytes], info: zipfile.ZipInfo, target: str) -> None:
        """One zip member: a CSV copied, or a `.csv.gz`, `.csv.7z`, `.csv.zip` holding just that CSV."""
        name = info.filename
        if name.endswith(".csv"):
            _copy(stream, self.open(target, info.file_size))
        elif name.endswith(".gz"):
            with gzip.GzipFile(fileobj=stream, mode="rb") as inner:
                _copy(inner, self.open(target, None))
        elif name.endswith(".7z"):
            with py7zr.SevenZipFile(stream, "r") as archive:
                files = [f for f in archive.list() if not f.is_directory]
                targets = self._inner(target, [f.filename for f in files])
                sizes = {f.filename: f.uncompressed for f in files}
                archive.extractall(factory=_SevenZipWriters(self, targets, sizes))
        else:
            with zipfile.ZipFile(stream) as archive:
                members = [i for i in archive.infolist() if not i.is_dir()]
                [(member, _)] = self._inner(target, [i.filename for i in members]).items()
                _check_zip_member(archive.getinfo(member))
                with archive.open(member) as inner:
                    _copy(inner, self.open(target, archive.getinfo(member).file_size, member))

    def _inner(self, target: str, names: list[str]) -> dict[str, str]:
        """A nested archive's one CSV, named as the member says (`x.csv.7z` holds `x.csv`); others skipped."""
        csvs = [n for n in names if _wanted(n, _CSV)]
        self.ignored += [" / ".join([*self.where, n]) for n in names if n not in csvs]
        expected = posixpath.basename(target)
        if [posixpath.basename(n) for n in csvs] != [expected]:
            raise self._error(f"holds {', '.join(csvs) or 'no CSV'}, not just the {expected} its name says",
                              self._by_hand())  # fmt: skip
        return {csvs[0]: target}

    def open(self, target: str, total: int | None, member: str | None = None) -> _Writer:
        """A writer for a planned CSV, to a temporary file the ingest does not pick up."""
        self.current = member
        temporary = f"{target}{_TEMPORARY}{uuid.uuid4().hex}"
        self.temporaries[target] = temporary
        handle = self.stack.enter_context(self.lake.open(temporary, "wb"))
        return _Writer(self, handle, target, total)

    def finished(self, writer: _Writer) -> None:
        """A member was read to its end and checked."""
        self.members.append(Unpacked(self.path, self.member(), writer.target, writer.written))
        self.current = None


def _copy(source: IO[bytes] | gzip.GzipFile, writer: _Writer) -> None:
    """Copy a stream to a member's writer a chunk at a time."""
    while chunk := source.read(CHUNK):
        writer.write(chunk)
    writer.close()


class _Writer(py7zr.io.Py7zIO):
    """Writes one member to its temporary file, with its progress (a bar on a terminal, log lines in a
    task's log); `close` ends the member (py7zr calls it only after the member's CRC matched)."""

    def __init__(self, archive: _Archive, handle: IO[bytes], target: str, total: int | None) -> None:
        self.archive, self.handle, self.target, self.total = archive, handle, target, total
        self.written = 0
        self.bar = Progress(f"unpack {target}", total, "B")

    def write(self, s: bytes | bytearray) -> int:
        self.handle.write(s)
        self.written += len(s)
        self.bar.advance(len(s))
        return len(s)

    def read(self, size: int | None = None) -> bytes:
        raise OSError("an unpacked member is written, never read back")

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.written

    def seekable(self) -> bool:
        """Not seekable: py7zr then does not rewind the writer when the member ends."""
        return False

    def flush(self) -> None:
        self.handle.flush()

    def size(self) -> int:
        return self.written

    def close(self) -> None:
        self.bar.close()
        self.handle.close()
        if self.total is not None and self.written != self.total:
            raise EOFError(f"{self.written:,} bytes unpacked, the archive lists {self.total:,}")
        self.archive.finished(self)


class _SevenZipWriters(py7zr.io.WriterFactory):
    """py7zr asks for one writer per member (by its name in the archive): a planned CSV's temporary
    file; any other member is read for the CRC check, then dropped."""

    def __init__(self, archive: _Archive, targets: dict[str, str], sizes: dict[str, int]) -> None:
        self.archive, self.targets, self.sizes = archive, targets, sizes

    def create(self, filename: str) -> py7zr.io.Py7zIO:
        if filename not in self.targets:
            return py7zr.io.NullIO()
        return self.archive.open(self.targets[filename], self.sizes.get(filename), filename)
