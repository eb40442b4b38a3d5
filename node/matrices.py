"""The node's matrix store (PROTOCOL §6): A and B by commitment, C by claim, as .npy files
under ``<datadir>/<network>/matrices/``.

Each matrix is kept in its own shape (A m×k int8, B k×n int8, C m×n int32) with its
committed *lines* contiguous: A and C row-major, B column-major (a Fortran-order
.npy), so that ``getmatrix`` serves a line range with one contiguous read and the
file itself is the download. A file is written to a temporary name, fsynced and renamed
(the directory fsynced after), so a kill -9 or a power cut leaves either the whole matrix
or a temporary file that the next start deletes; a failed write (a full disk) removes
its temporary file and says so. Nothing enters the store unless it matches its
commitment. The store is bounded (``max_bytes``); ``prune`` removes what the
node's job market no longer needs.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import numpy as np
from numpy.lib import format

from consensus.params import Network
from consensus.state import operand_error
from consensus.tx import claim_of
from miner.kernel import commit_a, commit_b, commit_result

KINDS = ("A", "B", "C")
_PREFIX = {"A": "a", "B": "b", "C": "c"}
_TMP = "tmp-"


class MatrixError(ValueError):
    """A matrix that cannot be stored: malformed, wrong shape or range, not matching its
    commitment, too large, or a store that is full or cannot be written."""


class StoreUnwritable(MatrixError):
    """The store is full (its bound or the disk) or cannot be written: nothing was stored."""


@dataclass(frozen=True)
class StoredMatrix:
    """``key`` is H_A, H_B or a claim; ``shape`` is the matrix's own (B: k×n); C knows its job."""

    key: bytes
    kind: str
    shape: tuple[int, int]
    path: Path
    size: int
    job_id: bytes | None = None

    @property
    def line_bytes(self) -> int:
        """Bytes of one committed line: a row of A, a column of B, a row of C."""
        rows, cols = self.shape
        return {"A": cols, "B": rows, "C": 4 * cols}[self.kind]

    @property
    def line_count(self) -> int:
        rows, cols = self.shape
        return cols if self.kind == "B" else rows


def check_operand(kind: str, array: np.ndarray, network: Network) -> np.ndarray:
    """A (m×k) or B (k×n) as an int8 array a job may use, or MatrixError with the reason."""
    problem = operand_error(kind, array, network)
    if problem:
        raise MatrixError(problem)
    return array


def check_result(array: np.ndarray) -> np.ndarray:
    if array.ndim != 2 or array.dtype != np.dtype("<i4"):
        raise MatrixError(f"C must be a 2-D int32 matrix, got {array.ndim}-D {array.dtype}")
    return array


def read_npy(path: Path) -> np.ndarray:
    """A .npy file as a read-only memory map (no pickles), or MatrixError."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise MatrixError(f"not a valid .npy matrix: {exc}") from None


class MatrixStore:
    def __init__(self, directory: Path, network: Network, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.network = network
        self.max_bytes = max_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        self._index: dict[bytes, StoredMatrix] = {}
        self._new: set[bytes] = set()  # stored (or stored again) since the last prune
        self._kept_new = False  # the last prune kept a matrix only because it was new
        for path in self.directory.iterdir():
            if path.name.startswith(_TMP):
                path.unlink(missing_ok=True)  # a write a crash interrupted
                continue
            entry = self._parse_name(path)
            if entry is not None:
                self._index[entry.key] = entry

    # --- names ---------------------------------------------------------------------
    def _parse_name(self, path: Path) -> StoredMatrix | None:
        parts = path.name.removesuffix(".npy").split("-")
        kinds = {v: k for k, v in _PREFIX.items()}
        try:
            kind = kinds[parts[0]]
            key = bytes.fromhex(parts[1])
            job_id = bytes.fromhex(parts[2]) if kind == "C" else None
            shape = read_npy(path).shape
        except (KeyError, IndexError, ValueError):
            return None
        return StoredMatrix(key, kind, (int(shape[0]), int(shape[1])), path, path.stat().st_size, job_id)

    def _path(self, kind: str, key: bytes, job_id: bytes | None) -> Path:
        suffix = f"-{job_id.hex()}" if job_id is not None else ""
        return self.directory / f"{_PREFIX[kind]}-{key.hex()}{suffix}.npy"

    # --- reads ---------------------------------------------------------------------
    def get(self, key: bytes) -> StoredMatrix | None:
        return self._index.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def entries(self) -> list[StoredMatrix]:
        return list(self._index.values())

    def usage(self) -> int:
        return sum(e.size for e in self._index.values())

    def matrix(self, key: bytes) -> np.ndarray | None:
        """The matrix in its own shape (B is k×n), memory-mapped."""
        entry = self._index.get(key)
        return None if entry is None else read_npy(entry.path)

    def lines(self, key: bytes) -> np.ndarray | None:
        """The committed lines, each contiguous: A rows, B columns (Bᵀ), C rows."""
        entry = self._index.get(key)
        matrix = self.matrix(key)
        if entry is None or matrix is None:
            return None
        return matrix.T if entry.kind == "B" else matrix

    def rows(self, key: bytes, first: int, count: int, max_bytes: int) -> list[memoryview] | None:
        """Up to ``count`` lines from ``first``, at most ``max_bytes`` in all (p2p ``getmatrix``):
        views of the file's memory map, copied only into the reply."""
        entry = self._index.get(key)
        lines = self.lines(key)
        if entry is None or lines is None:
            return None
        width = entry.line_bytes
        count = min(count, max(0, entry.line_count - first), max_bytes // width)
        block = memoryview(np.ascontiguousarray(lines[first:first + count])).cast("B")  # contiguous: a view
        return [block[i * width:(i + 1) * width] for i in range(count)]

    # --- writes --------------------------------------------------------------------
    def put(self, kind: str, array: np.ndarray, *, worker: bytes | None = None,
            job_id: bytes | None = None) -> StoredMatrix:
        """Check and store a matrix given in its own orientation; C needs its worker and job."""
        tmp = self.write_upload(np.asarray(array))
        try:
            return self.put_file(kind, tmp, worker=worker, job_id=job_id)
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, kind: str, tmp: Path, *, worker: bytes | None = None, job_id: bytes | None = None,
                 vet: Callable[[bytes], str | None] = lambda key: None) -> StoredMatrix:
        """Check a .npy file (the matrix in its own orientation) written under this store's
        directory, and move it into place; the file is gone afterwards either way. ``vet``
        sees the key first and may refuse it (a reason string)."""
        try:
            if kind not in KINDS:
                raise MatrixError(f"kind must be one of {', '.join(KINDS)}")
            array = read_npy(tmp)
            if kind == "C":
                if worker is None or job_id is None:
                    raise MatrixError("C needs the worker's address and the job id (it is stored by claim)")
                key = claim_of(worker, commit_result(np.asarray(check_result(array))))
            else:
                check_operand(kind, array, self.network)
                key = commit_a(array) if kind == "A" else commit_b(array)
                job_id = None
            problem = vet(key)
            if problem:
                raise MatrixError(problem)
            if key in self._index:
                self._new.add(key)  # wanted anew (the same A for a new job): as fresh as an upload
                os.utime(self._index[key].path)
                return self._index[key]
            size = tmp.stat().st_size
            if self.usage() + size > self.max_bytes:
                raise StoreUnwritable(f"matrix store full ({self.usage()} of {self.max_bytes} bytes used)")
            if kind == "B" and not array.flags.f_contiguous:  # columns contiguous: Fortran order
                _write_file(tmp, _npy(np.asfortranarray(array)))
            shape = (int(array.shape[0]), int(array.shape[1]))
            del array  # the memory map must not outlive the file's move
            final = self._path(kind, key, job_id)
            _fsync(tmp)  # its bytes on disk before its name: a power cut leaves no named file unwritten
            os.replace(tmp, final)
            _fsync(self.directory)
        except OSError as exc:
            raise StoreUnwritable(f"cannot write the matrix store at {self.directory}: {exc.strerror or exc}") from None
        finally:
            tmp.unlink(missing_ok=True)
        entry = StoredMatrix(key, kind, shape, final, final.stat().st_size, job_id)
        self._index[key] = entry
        self._new.add(key)
        return entry

    def new_upload(self) -> Path:
        """A temporary path in the store's directory for a streamed upload (``put_file``)."""
        try:
            fd, tmp = tempfile.mkstemp(prefix=_TMP, suffix=".npy", dir=self.directory)
        except OSError as exc:
            raise StoreUnwritable(f"cannot write the matrix store at {self.directory}: {exc.strerror or exc}") from None
        os.close(fd)
        return Path(tmp)

    def write_upload(self, array: np.ndarray) -> Path:
        """``array`` written to a new upload path (for ``put_file``, which makes it durable); a
        failed write (a full disk) leaves no file behind."""
        return self._write_upload(_npy(array))

    def write_lines_upload(self, kind: str, lines: Sequence[bytes | memoryview]) -> Path:
        """A matrix given as its committed lines (rows of A or C, columns of B), written as
        ``write_upload`` would write it, straight from the lines' buffers (a peer's replies)."""
        dtype = np.dtype("<i4") if kind == "C" else np.dtype(np.int8)
        width = len(lines[0]) // dtype.itemsize if lines else 0
        shape = (width, len(lines)) if kind == "B" else (len(lines), width)
        header = {"descr": format.dtype_to_descr(dtype), "fortran_order": kind == "B", "shape": shape}
        return self._write_upload(lambda fh: (format.write_array_header_1_0(fh, header), _write_lines(fh, lines)))

    def _write_upload(self, write: Callable[[BinaryIO], object]) -> Path:
        upload = self.new_upload()
        try:
            _write_file(upload, write)
        except OSError as exc:
            upload.unlink(missing_ok=True)
            raise StoreUnwritable(f"cannot write the matrix store at {self.directory}: {exc.strerror or exc}") from None
        return upload

    def remove(self, key: bytes) -> None:
        entry = self._index.pop(key, None)
        if entry is not None:
            entry.path.unlink(missing_ok=True)

    @property
    def prune_due(self) -> bool:
        """Whether a prune may drop something though no block came: a matrix was stored (or
        stored again) since the last prune, or the last one kept some only for being new."""
        return bool(self._new) or self._kept_new

    def prune(self, needed: set[bytes], released: set[bytes], grace_seconds: float) -> list[bytes]:
        """Remove matrices no live job needs: those only final jobs name (``released``), and
        those no job names that are older than ``grace_seconds`` (uploads never posted). What
        was stored since the last prune stays for this one: a client uploads A and B just
        before it sends their post, which may name an A that only final jobs named so far."""
        now = time.time()
        gone = []
        stored, self._new = self._new, set()  # puts on other threads meanwhile go to the new set
        self._kept_new = False
        for key, entry in list(self._index.items()):
            if key in needed:
                continue
            if key in stored or key in self._new:
                self._kept_new = True
                continue
            if key in released or now - entry.path.stat().st_mtime > grace_seconds:
                self.remove(key)
                gone.append(key)
        return gone


def _npy(array: np.ndarray) -> Callable[[BinaryIO], object]:
    """What writes ``array`` as a .npy file into an open file."""
    return partial(np.save, arr=array, allow_pickle=False)


IOV_MAX = max(os.sysconf("SC_IOV_MAX"), 16)  # buffers one writev takes (−1: unknown; POSIX allows 16 at least)


def _write_lines(fh: BinaryIO, lines: Sequence[bytes | memoryview]) -> None:
    """``lines`` written in order after what ``fh`` holds, ``IOV_MAX`` of them a system call
    (``os.writev``), each from the buffer it is in: neither a call per line (8,192 for a 64 MiB
    B) nor a copy that joins them (a 64 MiB pass, and the pages of the joined buffers)."""
    fh.flush()
    fd = fh.fileno()
    for start in range(0, len(lines), IOV_MAX):
        batch = [memoryview(line) for line in lines[start:start + IOV_MAX]]
        first = 0
        while first < len(batch):  # a short write (a signal, a disk filling up) goes on after it
            written = os.writev(fd, batch[first:first + IOV_MAX])
            while first < len(batch) and written >= len(batch[first]):
                written -= len(batch[first])
                first += 1
            if written:
                batch[first] = batch[first][written:]


def _write_file(path: Path, write: Callable[[BinaryIO], object]) -> None:
    with open(path, "wb") as fh:
        write(fh)


def _fsync(path: Path) -> None:
    """A file's bytes on disk (before its rename), or a directory's names (after it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
