"""LevelDB chain store: the one module that owns the on-disk key schema (docs/storage.md).

Everything a connected block changes — its bytes, index entry, state diff, undo
record, the state's LtHash lanes, best-chain and tx index entries, and the tip marker — is written by
``Store.commit`` as ONE LevelDB WriteBatch with ``sync=True``, so a crash leaves
the datadir at the previous or the next consistent tip, never in between.
"""
from __future__ import annotations

import os
import struct
from typing import Any, Callable, Iterable, Iterator

import plyvel

from consensus import encoding as enc
from consensus.block import Block, Header
from consensus.encoding import BIN32, U8, U32, U64, Bin, Tuple
from consensus.errors import DecodeError
from consensus.lthash import LtHash
from consensus.state import ACCOUNT_SCHEMA, JOB_SCHEMA, NO_CLAIM, Account, Job, StateDiff

from .blockindex import HAVE_DATA, IndexEntry

SCHEMA_VERSION = 3  # 3 added the job key index (K); a schema-2 datadir is migrated on open

# --- key schema (docs/storage.md) --------------------------------------------------
VERSION = b"v"  # u32 schema version
TIP = b"T"  # hash of the best tip
REINDEX = b"R"  # present while a reindex is rebuilding the derived records
BLOCK = b"B"  # + hash → canonical block bytes
ENTRY = b"I"  # + hash → index entry
BEST = b"C"  # + u64be height → hash on the best chain
ACCOUNT = b"A"  # + address → [balance, nonce]
JOB = b"J"  # + job_id → job
LANES = b"L"  # the tip state's LtHash lanes (2048 bytes, §3a)
DUE = b"D"  # + u64be height + job_id → u32 count (a multiset: see docs/storage.md)
JOB_KEYS = b"K"  # + H_A, H_B or claim (32) + job_id → u8 role (JOB_KEY_ROLES): the job key index
UNDO = b"U"  # + hash → StateDiff that disconnects the block
TXINDEX = b"X"  # + txid → [block hash, position]
ADDRESS_HISTORY = b"H"  # + address + u64be height + u32be position → u8 roles (optional address index)
ADDRESS_INDEX_ON = b"h"  # present while the address index covers the best chain from genesis
RECORD_PREFIXES = {"peer": b"P", "ban": b"N", "mempool": b"M"}  # opaque records (p2p; the mempool at shutdown)
DERIVED = (TIP, ENTRY, BEST, ACCOUNT, JOB, JOB_KEYS, LANES, DUE, UNDO, TXINDEX,
           ADDRESS_HISTORY, ADDRESS_INDEX_ON)  # rebuilt by a reindex

JOB_KEY_ROLES = ("A", "B", "C")  # the u8 of a JOB_KEYS record: the key is the job's H_A, H_B or claim
_ENTRY_SCHEMA = Tuple(Bin(max_size=512), U64, Bin(max_size=64), U8, U64, U64)
_FIELDS_SIZE = 32 + 8 + 32  # a header-only entry's prev ‖ timestamp u64 ‖ target: far below any header's size
_TXLOC_SCHEMA = Tuple(BIN32, U32)


class StoreError(Exception):
    """A datadir that cannot be used as it is."""


class DatadirLocked(StoreError):
    """Another process holds the datadir's LevelDB lock."""


class StoreWriteError(StoreError):
    """A write failed (disk full, I/O error). The store refuses further writes until the
    node restarts; what was committed before is intact (every commit is one batch)."""


class DatadirCorrupt(StoreError):
    """The database is damaged or from an incompatible version; ``--reindex`` or a fresh datadir fixes it."""


def _height_key(prefix: bytes, height: int) -> bytes:
    return prefix + struct.pack(">Q", height)


def _history_key(address: bytes, height: int, position: int) -> bytes:
    return ADDRESS_HISTORY + address + struct.pack(">QI", height, position)


def _job_key_records(job_id: bytes, job: Job | None) -> dict[bytes, bytes]:
    """The job key index records of one job: its H_A, H_B and (once claimed) claim → role."""
    if job is None:
        return {}
    keys = [(job.h_a, 0), (job.h_b, 1)] + ([(job.claim, 2)] if job.claim != NO_CLAIM else [])
    return {JOB_KEYS + key + job_id: bytes([role]) for key, role in keys}


def _corrupt(path: str, what: str) -> DatadirCorrupt:
    return DatadirCorrupt(f"chain database at {path} is corrupt ({what}); restart with --reindex "
                          f"to rebuild it from the stored blocks, or remove it to sync from scratch")


def encode_entry(entry: IndexEntry) -> bytes:
    """An ``I`` record; a header-only entry (no header kept) stores its header's fields instead."""
    work = entry.chain_work.to_bytes((entry.chain_work.bit_length() + 7) // 8, "big")
    header = entry.raw if entry.raw is not None else \
        entry.prev + struct.pack(">Q", entry.timestamp) + entry.target.to_bytes(32, "big")
    return enc.encode([header, entry.height, work, entry.status, entry.fees, entry.seq])


def decode_entry(block_hash: bytes, data: bytes) -> IndexEntry:
    v = enc.decode(data, _ENTRY_SCHEMA, 1024, "index entry")
    height, work, status, fees, seq = v[1], int.from_bytes(v[2], "big"), v[3], v[4], v[5]
    if len(v[0]) == _FIELDS_SIZE:
        if status & HAVE_DATA:
            raise DecodeError(f"index entry of {block_hash.hex()} has data but no header")
        (timestamp,) = struct.unpack_from(">Q", v[0], 32)
        entry = IndexEntry(block_hash, v[0][:32], height, timestamp, int.from_bytes(v[0][40:], "big"), work, status,
                           fees, seq)
    else:
        entry = IndexEntry.of(Header.decode(v[0]), height, work, status, fees, seq,
                              keep_header=bool(status & HAVE_DATA))
    if entry.hash != block_hash:
        raise DecodeError(f"index entry of {block_hash.hex()} holds header {entry.hash.hex()}")
    return entry


class StateReader:
    """``consensus.state.StateView`` over a LevelDB handle or snapshot (the committed tip)."""

    def __init__(self, db: Any, path: str) -> None:
        self._db = db
        self._path = path

    def _decode(self, data: bytes, schema: enc.Schema, what: str) -> Any:
        try:
            return enc.decode(data, schema, 1 << 20, what)
        except DecodeError as exc:
            raise _corrupt(self._path, f"bad {what} record: {exc}") from None

    def raw(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def account(self, address: bytes) -> Account | None:
        data = self.raw(ACCOUNT + address)
        return None if data is None else Account(*self._decode(data, ACCOUNT_SCHEMA, "account"))

    def job(self, job_id: bytes) -> Job | None:
        data = self.raw(JOB + job_id)
        return None if data is None else Job(*self._decode(data, JOB_SCHEMA, "job"))

    def jobs_due(self, height: int) -> list[bytes]:
        prefix = _height_key(DUE, height)
        return [k[len(prefix):] for k in self._db.iterator(prefix=prefix, include_value=False)]

    def jobs_naming(self, key: bytes) -> list[tuple[bytes, str]]:
        """``(job_id, role)`` of every job whose H_A, H_B or claim is ``key`` (role "A", "B" or
        "C"), from the job key index: no scan of the jobs."""
        return self._job_keys(self._db.iterator(prefix=JOB_KEYS + key), len(JOB_KEYS) + len(key))

    def _job_keys(self, records: Iterable[tuple[bytes, bytes]], skip: int) -> list[tuple[bytes, str]]:
        out = []
        for record, role in records:
            if len(record) != skip + 32 or len(role) != 1 or role[0] >= len(JOB_KEY_ROLES):
                raise _corrupt(self._path, "bad job key index record")
            out.append((record[skip:], JOB_KEY_ROLES[role[0]]))
        return out

    def lanes(self) -> LtHash:
        data = self.raw(LANES)
        if data is None or len(data) != 2048:
            raise _corrupt(self._path, "missing or bad state lanes")
        return LtHash.from_bytes(data)

    def accounts(self) -> Iterator[tuple[bytes, Account]]:
        """Every stored account (a full scan)."""
        for key, data in self._db.iterator(prefix=ACCOUNT):
            yield key[len(ACCOUNT):], Account(*self._decode(data, ACCOUNT_SCHEMA, "account"))

    def jobs(self) -> Iterator[tuple[bytes, Job]]:
        """Every stored job (a full scan)."""
        for key, data in self._db.iterator(prefix=JOB):
            yield key[len(JOB):], Job(*self._decode(data, JOB_SCHEMA, "job"))

    def best_hash(self, height: int) -> bytes | None:
        return self.raw(_height_key(BEST, height))

    def entry(self, block_hash: bytes) -> IndexEntry | None:
        data = self.raw(ENTRY + block_hash)
        if data is None:
            return None
        try:
            return decode_entry(block_hash, data)
        except DecodeError as exc:
            raise _corrupt(self._path, f"bad index entry: {exc}") from None

    def block_payout(self, height: int) -> tuple[bytes, int]:
        block_hash = self.best_hash(height)
        entry = self.entry(block_hash) if block_hash else None
        if entry is None:
            raise _corrupt(self._path, f"no best-chain entry at height {height}")
        return entry.header.miner, entry.fees

    def tip_hash(self) -> bytes | None:
        return self.raw(TIP)

    def block_bytes(self, block_hash: bytes) -> bytes | None:
        return self.raw(BLOCK + block_hash)

    def address_history(self, address: bytes) -> Iterator[tuple[int, int, int]]:
        """``(height, position, roles)`` of the address index entries of ``address``, newest first."""
        prefix = ADDRESS_HISTORY + address
        for key, value in self._db.iterator(prefix=prefix, reverse=True):
            if len(key) != len(prefix) + 12 or len(value) != 1:
                raise _corrupt(self._path, "bad address index record")
            height, position = struct.unpack(">QI", key[len(prefix):])
            yield height, position, value[0]

    def undo(self, block_hash: bytes) -> StateDiff:
        data = self.raw(UNDO + block_hash)
        if data is None:
            raise _corrupt(self._path, f"no undo record for block {block_hash.hex()}")
        try:
            return StateDiff.decode(data)
        except DecodeError as exc:
            raise _corrupt(self._path, f"bad undo record: {exc}") from None


class ChainBatch(StateReader):
    """Writes for one atomic commit, readable as the state they produce (a StateView overlay).

    Connecting several blocks in a row applies each block's diff here, so the
    next block sees its parent's state before anything is written.
    """

    def __init__(self, store: "Store", entries: Callable[[bytes], IndexEntry | None] | None = None) -> None:
        super().__init__(store.db, store.path)
        self._entries = entries  # an in-memory index to read payouts from, if the caller has one
        self.writes: dict[bytes, bytes | None] = {}
        self.due_keys: set[bytes] = set()  # keys of ``writes`` in the due index
        self.job_key_writes: set[bytes] = set()  # keys of ``writes`` in the job key index
        self.objects: dict[bytes, Account | Job | None] = {}  # decoded accounts and jobs, read or written
        self.size = 0  # approximate bytes pending

    def copy(self) -> "ChainBatch":
        other = ChainBatch.__new__(ChainBatch)
        other._db, other._path, other._entries = self._db, self._path, self._entries
        other.writes, other.due_keys, other.size = dict(self.writes), set(self.due_keys), self.size
        other.job_key_writes = set(self.job_key_writes)
        other.objects = dict(self.objects)
        return other

    def __bool__(self) -> bool:
        return bool(self.writes)

    def raw(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._db.get(key)

    def account(self, address: bytes) -> Account | None:
        key = ACCOUNT + address
        if key not in self.objects:
            self.objects[key] = super().account(address)
        return self.objects[key]  # type: ignore[return-value]

    def job(self, job_id: bytes) -> Job | None:
        key = JOB + job_id
        if key not in self.objects:
            self.objects[key] = super().job(job_id)
        return self.objects[key]  # type: ignore[return-value]

    def entry(self, block_hash: bytes) -> IndexEntry | None:
        found = self._entries(block_hash) if self._entries else None
        return found or super().entry(block_hash)

    def _put(self, key: bytes, value: bytes | None) -> None:
        self.writes[key] = value
        self.size += len(key) + (len(value) if value else 0)

    def jobs_due(self, height: int) -> list[bytes]:
        prefix = _height_key(DUE, height)
        found = {k[len(prefix):] for k in self._db.iterator(prefix=prefix, include_value=False)}
        for key in self.due_keys:
            if key.startswith(prefix):
                (found.add if self.writes[key] is not None else found.discard)(key[len(prefix):])
        return sorted(found)

    def jobs_naming(self, key: bytes) -> list[tuple[bytes, str]]:
        prefix = JOB_KEYS + key
        found = dict(self._db.iterator(prefix=prefix))
        for record in self.job_key_writes:
            if record.startswith(prefix):
                value = self.writes[record]
                if value is None:
                    found.pop(record, None)
                else:
                    found[record] = value
        return self._job_keys(sorted(found.items()), len(prefix))

    def put_block(self, block_hash: bytes, raw: bytes) -> None:
        self._put(BLOCK + block_hash, raw)

    def put_entry(self, entry: IndexEntry) -> None:
        self._put(ENTRY + entry.hash, encode_entry(entry))

    def delete_entry(self, block_hash: bytes) -> None:
        self._put(ENTRY + block_hash, None)

    def apply(self, diff: StateDiff) -> None:
        """Write a state diff (a forward diff or an undo record)."""
        for address, account in diff.accounts.items():
            self._put(ACCOUNT + address, None if account is None else enc.encode(account.to_list()))
            self.objects[ACCOUNT + address] = account
        for job_id, job in diff.jobs.items():
            self._index_job(job_id, self.job(job_id), job)
            self._put(JOB + job_id, None if job is None else enc.encode(job.to_list()))
            self.objects[JOB + job_id] = job
        for height, job_id in diff.due_add:
            self._count_due(height, job_id, +1)
        for height, job_id in diff.due_remove:
            self._count_due(height, job_id, -1)
        if diff.lanes is not None:
            self._put(LANES, diff.lanes)

    def _index_job(self, job_id: bytes, old: Job | None, new: Job | None) -> None:
        """Move a job's key index records from its old to its new H_A, H_B and claim."""
        before, after = _job_key_records(job_id, old), _job_key_records(job_id, new)
        for record in before.keys() - after.keys():
            self._put(record, None)
            self.job_key_writes.add(record)
        for record in after.keys() - before.keys():
            self._put(record, after[record])
            self.job_key_writes.add(record)

    def _count_due(self, height: int, job_id: bytes, delta: int) -> None:
        key = _height_key(DUE, height) + job_id
        data = self.raw(key)
        count = (self._decode(data, U32, "due count") if data is not None else 0) + delta
        if count < 0:
            raise _corrupt(self._path, f"due index underflow at height {height}")
        self.due_keys.add(key)
        self._put(key, enc.encode(count) if count else None)

    def put_undo(self, block_hash: bytes, undo: StateDiff) -> None:
        self._put(UNDO + block_hash, undo.encode())

    def delete_undo(self, block_hash: bytes) -> None:
        self._put(UNDO + block_hash, None)

    def set_best(self, height: int, block_hash: bytes | None) -> None:
        self._put(_height_key(BEST, height), block_hash)

    def index_txs(self, block: Block, present: bool) -> None:
        for position, tx in enumerate(block.txs):
            self._put(TXINDEX + tx.txid, enc.encode([block.hash, position]) if present else None)

    def index_addresses(self, entries: dict[tuple[bytes, int], int], height: int, present: bool) -> None:
        """Add or remove one block's address index entries: ``(address, position) → roles``."""
        for (address, position), roles in entries.items():
            self._put(_history_key(address, height, position), bytes([roles]) if present else None)

    def set_tip(self, block_hash: bytes) -> None:
        self._put(TIP, block_hash)


class Store:
    """A LevelDB database under ``<datadir>/<network>/chain``."""

    def __init__(self, datadir: str | os.PathLike[str], network: str, repair: bool = False) -> None:
        """Open (creating) the database; ``repair`` first lets LevelDB rebuild a damaged
        database from its table and log files (the ``--reindex`` path then rebuilds state)."""
        self.path = os.path.join(os.fspath(datadir), network, "chain")
        os.makedirs(self.path, exist_ok=True)
        try:
            self.db = self._open(repair)
        except plyvel.IOError as exc:
            if "lock" in str(exc).lower():
                raise DatadirLocked(f"datadir {self.path} is in use by another process "
                                    f"(LevelDB lock held); stop the other node or pick another datadir") from None
            raise StoreError(f"cannot open chain database at {self.path}: {exc}") from None
        except plyvel.CorruptionError as exc:
            raise _corrupt(self.path, str(exc)) from None
        self.write_error: str | None = None
        try:
            self._check_version()
        except StoreError:
            self.db.close()
            raise

    def _write(self, write: Callable[[], None]) -> None:
        """Run one LevelDB write; a failure latches the store read-only with a clear message."""
        if self.write_error is not None:
            raise StoreWriteError(self.write_error)
        try:
            write()
        except plyvel.Error as exc:
            detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            self.write_error = (f"cannot write the chain database at {self.path} ({detail}); nothing "
                                f"partial was written: free disk space and restart pouwd")
            raise StoreWriteError(self.write_error) from None

    def _open(self, repair: bool) -> plyvel.DB:
        try:
            return plyvel.DB(self.path, create_if_missing=True)
        except plyvel.CorruptionError:
            if not repair:
                raise
        plyvel.repair_db(self.path)
        return plyvel.DB(self.path, create_if_missing=True)

    def _check_version(self) -> None:
        data = self.db.get(VERSION)
        if data is None:
            if next(self.db.iterator(include_value=False), None) is not None:
                raise _corrupt(self.path, "no schema version")
            self._write(lambda: self.db.put(VERSION, enc.encode(SCHEMA_VERSION), sync=True))
            return
        try:
            version = enc.decode(data, U32, 16, "schema version")
        except DecodeError:
            raise _corrupt(self.path, "unreadable schema version") from None
        if version == 2:
            self._add_job_key_index()
            return
        if version != SCHEMA_VERSION:
            raise DatadirCorrupt(f"chain database at {self.path} has schema version {version}, this node "
                                 f"uses {SCHEMA_VERSION}; remove it (blocks will sync again)")

    def _add_job_key_index(self) -> None:
        """Schema 2 → 3: index every stored job by its keys, and the new version, in one batch."""
        wb = self.db.write_batch(sync=True)
        for job_id, job in self.reader().jobs():
            for record, role in _job_key_records(job_id, job).items():
                wb.put(record, role)
        wb.put(VERSION, enc.encode(SCHEMA_VERSION))
        self._write(wb.write)

    def close(self) -> None:
        if not self.db.closed:
            self.db.close()

    # --- reads ---------------------------------------------------------------------
    def reader(self, snapshot: bool = False) -> StateReader:
        """A StateView of the committed state (a LevelDB snapshot if asked: stable across commits)."""
        return StateReader(self.db.snapshot() if snapshot else self.db, self.path)

    def batch(self, entries: Callable[[bytes], IndexEntry | None] | None = None) -> ChainBatch:
        """An empty commit; ``entries`` looks up index entries in memory before the database."""
        return ChainBatch(self, entries)

    def tip_hash(self) -> bytes | None:
        return self.db.get(TIP)

    def reindexing(self) -> bool:
        return self.db.get(REINDEX) is not None

    def block_bytes(self, block_hash: bytes) -> bytes | None:
        return self.db.get(BLOCK + block_hash)

    def block_hashes(self) -> Iterator[bytes]:
        for key in self.db.iterator(prefix=BLOCK, include_value=False):
            yield key[len(BLOCK):]

    def entries(self) -> Iterator[IndexEntry]:
        for key, data in self.db.iterator(prefix=ENTRY):
            try:
                yield decode_entry(key[len(ENTRY):], data)
            except DecodeError as exc:
                raise _corrupt(self.path, f"bad index entry: {exc}") from None

    def best_chain(self) -> list[bytes]:
        """Best-chain hashes by height, from genesis."""
        out = []
        for height, (key, value) in enumerate(self.db.iterator(prefix=BEST)):
            if struct.unpack(">Q", key[len(BEST):])[0] != height or len(value) != 32:
                raise _corrupt(self.path, f"best-chain index has a gap at height {height}")
            out.append(value)
        return out

    def tx_location(self, txid: bytes) -> tuple[bytes, int] | None:
        data = self.db.get(TXINDEX + txid)
        if data is None:
            return None
        try:
            block_hash, position = enc.decode(data, _TXLOC_SCHEMA, 64, "tx location")
        except DecodeError as exc:
            raise _corrupt(self.path, f"bad tx index record: {exc}") from None
        return block_hash, position

    def dump(self, prefixes: Iterable[bytes] = (ACCOUNT, JOB, DUE)) -> dict[bytes, bytes]:
        """Every key/value under the given prefixes (state by default): for tests and audits."""
        return {k: v for p in prefixes for k, v in self.db.iterator(prefix=p)}

    # --- writes ----------------------------------------------------------------------
    def commit(self, batch: ChainBatch) -> None:
        """Write everything in ``batch`` atomically and durably; returns after the write."""
        wb = self.db.write_batch(sync=True)
        for key, value in batch.writes.items():
            if value is None:
                wb.delete(key)
            else:
                wb.put(key, value)
        self._write(wb.write)

    def start_reindex(self, address_index: bool = False) -> None:
        """Delete every derived record in one batch and flag the rebuild (blocks are kept);
        ``address_index``: the rebuild keeps the address index, so mark it as on."""
        wb = self.db.write_batch(sync=True)
        for prefix in DERIVED:
            for key in self.db.iterator(prefix=prefix, include_value=False):
                wb.delete(key)
        wb.put(REINDEX, b"")
        if address_index:
            wb.put(ADDRESS_INDEX_ON, b"")
        self._write(wb.write)

    def finish_reindex(self) -> None:
        self._write(lambda: self.db.delete(REINDEX, sync=True))

    # --- the optional address index ------------------------------------------------------
    def address_index_on(self) -> bool:
        return self.db.get(ADDRESS_INDEX_ON) is not None

    def set_address_index(self, on: bool) -> None:
        """Mark the address index as complete, or drop it with every entry (one batch)."""
        wb = self.db.write_batch(sync=True)
        if on:
            wb.put(ADDRESS_INDEX_ON, b"")
        else:
            for key in self.db.iterator(prefix=ADDRESS_HISTORY, include_value=False):
                wb.delete(key)
            wb.delete(ADDRESS_INDEX_ON)
        self._write(wb.write)

    # --- opaque records (p2p's peers and bans; the mempool kept over a restart) --------
    def put_record(self, kind: str, key: bytes, value: bytes) -> None:
        self._write(lambda: self.db.put(RECORD_PREFIXES[kind] + key, value))

    def get_record(self, kind: str, key: bytes) -> bytes | None:
        return self.db.get(RECORD_PREFIXES[kind] + key)

    def delete_record(self, kind: str, key: bytes) -> None:
        self._write(lambda: self.db.delete(RECORD_PREFIXES[kind] + key))

    def records(self, kind: str) -> Iterator[tuple[bytes, bytes]]:
        """``kind``'s records, key (without the prefix) and value; raises ``DatadirCorrupt``
        where LevelDB cannot read on."""
        prefix = RECORD_PREFIXES[kind]
        for key, value in self._scan(prefix, include_value=True):
            yield key[len(prefix):], value

    def _scan(self, prefix: bytes, include_value: bool) -> Iterator[Any]:
        try:
            yield from self.db.iterator(prefix=prefix, include_value=include_value)
        except plyvel.Error as exc:
            raise _corrupt(self.path, str(exc)) from None

    def replace_records(self, kind: str, items: Iterable[tuple[bytes, bytes]]) -> None:
        """All of ``kind``'s records replaced by ``items``, in one synced batch."""
        prefix = RECORD_PREFIXES[kind]
        wb = self.db.write_batch(sync=True)
        for key in self._scan(prefix, include_value=False):
            wb.delete(key)
        for key, value in items:
            wb.put(prefix + key, value)
        self._write(wb.write)
