"""The wallet keystore: deterministic keys from one seed, imported keys, labels; the secrets
encrypted with a password.

File format (JSON, version 2)::

    {"version": 2, "network": "dev",
     "keys": [{"address": "dpw1...", "index": 0, "label": "savings"},
              {"address": "dpw1...", "index": null, "label": "dev faucet"}],
     "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<16 bytes hex>"},
     "cipher": {"name": "aes-256-gcm", "nonce": "<12 bytes hex>",
                "ciphertext": "<secrets + tag hex>", "check": "<32 bytes hex>"}}

A key with an ``index`` is derived from the seed (``client.hdkeys``: SLIP-0010 Ed25519 on
``m/44'/8733'/0'/0'/index'`` below the BIP-39 seed); one with ``index`` null was imported.
The sealed secrets are the JSON ``{"entropy": hex or null, "imported": [seed hex, ...]}``:
the BIP-39 entropy (the backup phrase) and the Ed25519 seeds of the imported keys, in the
order they appear in ``keys``. A wallet made by ``import-dev-faucet`` (or a version 1
file) has no entropy until its first ``new-address``.

The AES key is scrypt(password, salt). ``check = SHA-256("pouw/wallet-check" ||
key)`` tells a wrong password apart from a damaged file; the clear fields
(version, network, keys, kdf) are the GCM associated data, so editing them is
detected on unlock. The keys are in clear so ``wallet list``/``balance``/``history``
need no password. Any change re-seals the file under the same password and salt with
a fresh nonce, replacing it atomically under a lock file.

Version 1 files (one key: ``"address"`` in clear, its 32-byte Ed25519 seed sealed) are
read as a wallet with one imported key; the first change writes version 2 and keeps the
old file as ``wallet.json.v1-backup``.

Each file records its own scrypt cost. Production always writes ``DEFAULT_SCRYPT``;
tests pass a cheaper ``ScryptParams`` to ``Keystore.seal``/``create`` to stay fast.
"""
from __future__ import annotations

import fcntl
import getpass
import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from consensus.errors import AddressError
from consensus.keys import PrivateKey, decode_address, encode_address
from consensus.params import NETWORKS, Network

from . import hdkeys

VERSION = 2
WALLET_NAME = "wallet.json"
PASSWORD_ENV = "POUW_WALLET_PASSWORD"
SALT_SIZE = 16
NONCE_SIZE = 12
MAX_SCRYPT_N = 2**20  # 1 GiB at r=8: refuse files that would exhaust memory
MAX_KEYS = 100_000
MAX_LABEL = 100


@dataclass(frozen=True)
class ScryptParams:
    n: int = 2**15
    r: int = 8
    p: int = 1

    def validate(self) -> None:
        if not (1 < self.n <= MAX_SCRYPT_N and self.n & (self.n - 1) == 0) or not (
                1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise WalletCorrupt(f"unsupported scrypt parameters {self}")


DEFAULT_SCRYPT = ScryptParams()


class WalletError(Exception):
    """Base class for keystore problems; the message is meant for the user."""


class WalletExists(WalletError):
    pass


class WalletNotFound(WalletError):
    pass


class WrongPassword(WalletError):
    pass


class WalletCorrupt(WalletError):
    pass


def wallet_path(datadir: str | Path, network: Network) -> Path:
    """The default keystore location: ``<datadir>/<network>/wallet.json``."""
    return Path(datadir) / network.name / WALLET_NAME


def faucet_key(network: Network) -> PrivateKey:
    """The public dev faucet key; refused where it has no funds and must not be used."""
    if not network.faucet:
        raise WalletError(f"the dev faucet key exists only on dev and regtest, not on {network.name}")
    from consensus.genesis import dev_faucet_key  # here: genesis pulls in numpy, slow for every CLI call
    return dev_faucet_key()


def _derive(password: str, salt: bytes, params: ScryptParams) -> bytes:
    secret = unicodedata.normalize("NFC", password).encode()
    return Scrypt(salt=salt, length=32, n=params.n, r=params.r, p=params.p).derive(secret)


def _check_value(key: bytes) -> bytes:
    return hashlib.sha256(b"pouw/wallet-check" + key).digest()


def check_label(label: str) -> str:
    if len(label) > MAX_LABEL or not label.isprintable():
        raise WalletError(f"a label is at most {MAX_LABEL} printable characters")
    return label


@dataclass(frozen=True)
class KeyInfo:
    """One key as the file shows it: its address, its derivation index (None: imported), a label."""

    address: str
    index: int | None
    label: str = ""

    @property
    def path(self) -> str | None:
        return None if self.index is None else hdkeys.format_path(hdkeys.key_path(self.index))

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "index": self.index, "label": self.label}


@dataclass(frozen=True)
class Secrets:
    """What the password protects: the BIP-39 entropy and the imported keys' seeds."""

    entropy: bytes | None
    imported: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        return json.dumps({"entropy": self.entropy.hex() if self.entropy is not None else None,
                           "imported": [seed.hex() for seed in self.imported]}, sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes, version: int) -> "Secrets":
        if version == 1:
            return cls(None, (data,))
        try:
            doc = json.loads(data)
            entropy = None if doc["entropy"] is None else bytes.fromhex(doc["entropy"])
            imported = tuple(bytes.fromhex(seed) for seed in doc["imported"])
        except (ValueError, KeyError, TypeError) as exc:
            raise WalletCorrupt(f"malformed wallet secrets: {exc}") from None
        if (entropy is not None and len(entropy) not in hdkeys.WORD_COUNTS.values()) or any(
                len(seed) != 32 for seed in imported):
            raise WalletCorrupt("malformed wallet secrets: bad entropy or key size")
        return cls(entropy, imported)


@dataclass(frozen=True)
class Keystore:
    """The contents of a wallet file: the keys in clear, the secrets sealed."""

    network: str
    keys: tuple[KeyInfo, ...]
    scrypt: ScryptParams
    salt: bytes
    nonce: bytes
    ciphertext: bytes
    check: bytes
    version: int = VERSION

    @property
    def address(self) -> str:
        """The wallet's first address (its default)."""
        return self.keys[0].address

    def find(self, address: str) -> KeyInfo:
        for info in self.keys:
            if info.address == address.lower():
                return info
        raise WalletError(f"{address} is not an address of this wallet")

    def _header(self) -> dict[str, Any]:
        kdf = {"name": "scrypt", "n": self.scrypt.n, "r": self.scrypt.r, "p": self.scrypt.p,
               "salt": self.salt.hex()}
        if self.version == 1:
            return {"version": 1, "network": self.network, "address": self.address, "kdf": kdf}
        return {"version": self.version, "network": self.network, "keys": [k.to_json() for k in self.keys],
                "kdf": kdf}

    def _aad(self) -> bytes:
        return json.dumps(self._header(), sort_keys=True, separators=(",", ":")).encode()

    def _sealed(self, aes_key: bytes, secrets_: Secrets) -> "Keystore":
        nonce = secrets.token_bytes(NONCE_SIZE)
        unsealed = replace(self, nonce=nonce, ciphertext=b"", check=_check_value(aes_key))
        return replace(unsealed, ciphertext=AESGCM(aes_key).encrypt(nonce, secrets_.encode(), unsealed._aad()))

    @classmethod
    def seal(cls, secrets_: Secrets, keys: tuple[KeyInfo, ...], network: Network, password: str,
             scrypt: ScryptParams = DEFAULT_SCRYPT) -> "Keystore":
        salt = secrets.token_bytes(SALT_SIZE)
        unsealed = cls(network.name, keys, scrypt, salt, b"", b"", b"")
        return unsealed._sealed(_derive(password, salt, scrypt), secrets_)

    def unlock(self, password: str) -> "Unlocked":
        """The wallet opened; ``WrongPassword`` or ``WalletCorrupt`` otherwise."""
        aes_key = _derive(password, self.salt, self.scrypt)
        if not hmac.compare_digest(_check_value(aes_key), self.check):
            raise WrongPassword("wrong wallet password")
        try:
            plain = AESGCM(aes_key).decrypt(self.nonce, self.ciphertext, self._aad())
        except InvalidTag:
            raise WalletCorrupt("wallet file is damaged or was modified (authentication tag mismatch)") from None
        secrets_ = Secrets.decode(plain, self.version)
        if len(secrets_.imported) != sum(k.index is None for k in self.keys):
            raise WalletCorrupt("wallet file is damaged: imported keys and secrets disagree")
        return Unlocked(self, secrets_, aes_key)

    def to_json(self) -> str:
        doc = self._header()
        doc["cipher"] = {"name": "aes-256-gcm", "nonce": self.nonce.hex(),
                         "ciphertext": self.ciphertext.hex(), "check": self.check.hex()}
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Keystore":
        try:
            doc = json.loads(text)
            version = doc["version"]
            if version not in (1, VERSION):
                raise WalletCorrupt(f"unsupported wallet version {version!r}")
            kdf, cipher = doc["kdf"], doc["cipher"]
            if kdf["name"] != "scrypt" or cipher["name"] != "aes-256-gcm":
                raise WalletCorrupt(f"unsupported wallet crypto {kdf['name']}/{cipher['name']}")
            params = ScryptParams(int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
            if version == 1:
                keys = (KeyInfo(str(doc["address"]), None),)
            else:
                keys = tuple(KeyInfo(str(k["address"]), None if k["index"] is None else int(k["index"]),
                                     str(k["label"])) for k in doc["keys"][:MAX_KEYS + 1])
            keystore = cls(str(doc["network"]), keys, params, bytes.fromhex(kdf["salt"]),
                           bytes.fromhex(cipher["nonce"]), bytes.fromhex(cipher["ciphertext"]),
                           bytes.fromhex(cipher["check"]), version)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise WalletCorrupt(f"malformed wallet file: {exc}") from None
        params.validate()
        if len(keystore.nonce) != NONCE_SIZE or len(keystore.check) != 32:
            raise WalletCorrupt("malformed wallet file: bad nonce or check size")
        if not 1 <= len(keys) <= MAX_KEYS:
            raise WalletCorrupt(f"malformed wallet file: 1 to {MAX_KEYS} keys")
        return keystore


@dataclass(frozen=True)
class Unlocked:
    """A keystore opened with its password: signing keys, and changes sealed under the same password."""

    keystore: Keystore
    secrets: Secrets
    aes_key: bytes

    def signing_key(self, address: str) -> PrivateKey:
        """The key of one of the wallet's addresses (a derived key is checked against its address)."""
        info = self.keystore.find(address)
        if info.index is None:
            position = [k.address for k in self.keystore.keys if k.index is None].index(info.address)
            key = PrivateKey(self.secrets.imported[position])
        else:
            if self.secrets.entropy is None:
                raise WalletCorrupt("wallet file is damaged: a derived key without a seed")
            key = hdkeys.wallet_key(hdkeys.seed_of(self.secrets.entropy), info.index)
        if encode_address(_hrp(self.keystore), key.address) != info.address:
            raise WalletCorrupt(f"wallet file is damaged: the key of {info.address} does not match it")
        return key

    def _changed(self, secrets_: Secrets, keys: tuple[KeyInfo, ...]) -> "Keystore":
        if len(keys) > MAX_KEYS:
            raise WalletError(f"a wallet holds at most {MAX_KEYS} keys")
        return replace(self.keystore, keys=keys, version=VERSION)._sealed(self.aes_key, secrets_)

    def with_new_keys(self, count: int, label: str = "") -> tuple["Keystore", list[KeyInfo], bool]:
        """``count`` more derived keys; returns (keystore, new keys, whether a seed had to be made first)."""
        entropy = self.secrets.entropy
        made_seed = entropy is None
        if entropy is None:
            entropy = hdkeys.new_entropy(12)
        seed = hdkeys.seed_of(entropy)
        start = 1 + max((k.index for k in self.keystore.keys if k.index is not None), default=-1)
        hrp = _hrp(self.keystore)
        new = [KeyInfo(encode_address(hrp, hdkeys.wallet_key(seed, i).address), i, check_label(label))
               for i in range(start, start + count)]
        return self._changed(replace(self.secrets, entropy=entropy), self.keystore.keys + tuple(new)), new, made_seed

    def with_label(self, address: str, label: str) -> "Keystore":
        info = self.keystore.find(address)
        keys = tuple(replace(k, label=check_label(label)) if k == info else k for k in self.keystore.keys)
        return self._changed(self.secrets, keys)

    def with_import(self, key: PrivateKey, label: str = "") -> "Keystore":
        address = encode_address(_hrp(self.keystore), key.address)
        if any(k.address == address for k in self.keystore.keys):
            raise WalletExists(f"{address} is already in this wallet")
        return self._changed(replace(self.secrets, imported=self.secrets.imported + (key.seed,)),
                             self.keystore.keys + (KeyInfo(address, None, check_label(label)),))


def _hrp(keystore: Keystore) -> str:
    return NETWORKS[keystore.network].hrp


def new_keystore(network: Network, password: str, entropy: bytes, count: int = 1,
                 scrypt: ScryptParams = DEFAULT_SCRYPT) -> Keystore:
    """A wallet with the first ``count`` keys of the seed of ``entropy``."""
    seed = hdkeys.seed_of(entropy)
    keys = tuple(KeyInfo(encode_address(network.hrp, hdkeys.wallet_key(seed, i).address), i)
                 for i in range(max(1, count)))
    return Keystore.seal(Secrets(entropy), keys, network, password, scrypt)


def imported_keystore(network: Network, password: str, key: PrivateKey, label: str = "",
                      scrypt: ScryptParams = DEFAULT_SCRYPT) -> Keystore:
    """A wallet of one imported key and no seed yet (``import-dev-faucet``)."""
    return Keystore.seal(Secrets(None, (key.seed,)), (KeyInfo(encode_address(network.hrp, key.address), None,
                                                              check_label(label)),), network, password, scrypt)


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save(path: Path, keystore: Keystore, overwrite: bool = False) -> None:
    """Write atomically with mode 0600; without ``overwrite`` never replaces an existing file.

    The temp file is fsynced, then hard-linked into place (a rename that fails
    instead of overwriting) or, with ``overwrite``, renamed over the old file; then
    the directory is fsynced. Overwriting a version 1 file first keeps it as
    ``<name>.v1-backup``.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(keystore.to_json())
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            if Keystore.from_json(path.read_text(encoding="utf-8")).version == 1:
                backup = path.with_name(path.name + ".v1-backup")
                if not backup.exists():
                    os.link(path, backup)
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise WalletExists(f"a wallet already exists at {path}; refusing to overwrite it") from None
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside the wallet: one read-modify-write at a time."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def load(path: Path, network: Network) -> Keystore:
    """Read the keystore at ``path`` and check it belongs to ``network``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WalletNotFound(f"no wallet at {path}: create one with 'pouw-cli wallet create'") from None
    keystore = Keystore.from_json(text)
    if keystore.network != network.name:
        raise WalletError(f"wallet {path} is for network {keystore.network}, not {network.name}")
    for info in keystore.keys:
        try:
            decode_address(info.address, network.hrp)
        except AddressError as exc:
            raise WalletCorrupt(f"malformed wallet file: {info.address!r}: {exc}") from None
    return keystore


def create(path: Path, keystore: Keystore) -> Keystore:
    """Write a new wallet to ``path`` (refusing to overwrite)."""
    if path.exists():
        raise WalletExists(f"a wallet already exists at {path}; refusing to overwrite it")
    save(path, keystore)
    return keystore


def read_password(confirm: bool = False) -> str:
    """The password from ``$POUW_WALLET_PASSWORD``, else a prompt (twice with ``confirm``)."""
    password = os.environ.get(PASSWORD_ENV)
    if password is None:
        try:
            password = getpass.getpass("wallet password: ")
            if confirm and getpass.getpass("repeat password: ") != password:
                raise WalletError("passwords do not match")
        except EOFError:  # Ctrl-D at the prompt, or no terminal and nothing on stdin
            raise WalletError(f"no wallet password: type it at the prompt or set {PASSWORD_ENV}") from None
    if not password:
        raise WalletError("empty wallet password")
    return password
