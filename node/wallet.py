"""The wallet keystore: one Ed25519 seed, encrypted with a password.

File format (JSON, version 1)::

    {"version": 1, "network": "dev", "address": "dpw1...",
     "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<16 bytes hex>"},
     "cipher": {"name": "aes-256-gcm", "nonce": "<12 bytes hex>",
                "ciphertext": "<seed + tag hex>", "check": "<32 bytes hex>"}}

The AES key is scrypt(password, salt). ``check = SHA-256("pouw/wallet-check" ||
key)`` tells a wrong password apart from a damaged file; the clear fields
(version, network, address, kdf) are the GCM associated data, so editing them is
detected on unlock. The address is in clear so ``wallet address`` needs no password.

Each file records its own scrypt cost. Production always writes ``DEFAULT_SCRYPT``;
tests pass a cheaper ``ScryptParams`` to ``Keystore.seal``/``create`` to stay fast.
"""
from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from consensus.keys import PrivateKey, encode_address
from consensus.params import Network

VERSION = 1
WALLET_NAME = "wallet.json"
PASSWORD_ENV = "POUW_WALLET_PASSWORD"
SALT_SIZE = 16
NONCE_SIZE = 12
MAX_SCRYPT_N = 2**20  # 1 GiB at r=8: refuse files that would exhaust memory


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


@dataclass(frozen=True)
class Keystore:
    """The contents of a wallet file: the address in clear, the seed sealed."""

    network: str
    address: str
    scrypt: ScryptParams
    salt: bytes
    nonce: bytes
    ciphertext: bytes
    check: bytes

    def _header(self) -> dict[str, Any]:
        return {"version": VERSION, "network": self.network, "address": self.address,
                "kdf": {"name": "scrypt", "n": self.scrypt.n, "r": self.scrypt.r,
                        "p": self.scrypt.p, "salt": self.salt.hex()}}

    def _aad(self) -> bytes:
        return json.dumps(self._header(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def seal(cls, key: PrivateKey, network: Network, password: str,
             scrypt: ScryptParams = DEFAULT_SCRYPT) -> "Keystore":
        salt, nonce = secrets.token_bytes(SALT_SIZE), secrets.token_bytes(NONCE_SIZE)
        aes_key = _derive(password, salt, scrypt)
        unsealed = cls(network.name, encode_address(network.hrp, key.address), scrypt, salt, nonce,
                       b"", _check_value(aes_key))
        ciphertext = AESGCM(aes_key).encrypt(nonce, key.seed, unsealed._aad())
        return replace(unsealed, ciphertext=ciphertext)

    def unlock(self, password: str) -> PrivateKey:
        """The signing key; ``WrongPassword`` or ``WalletCorrupt`` otherwise."""
        aes_key = _derive(password, self.salt, self.scrypt)
        if not hmac.compare_digest(_check_value(aes_key), self.check):
            raise WrongPassword("wrong wallet password")
        try:
            seed = AESGCM(aes_key).decrypt(self.nonce, self.ciphertext, self._aad())
        except InvalidTag:
            raise WalletCorrupt("wallet file is damaged or was modified (authentication tag mismatch)") from None
        return PrivateKey(seed)

    def to_json(self) -> str:
        doc = self._header()
        doc["cipher"] = {"name": "aes-256-gcm", "nonce": self.nonce.hex(),
                         "ciphertext": self.ciphertext.hex(), "check": self.check.hex()}
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Keystore":
        try:
            doc = json.loads(text)
            if doc["version"] != VERSION:
                raise WalletCorrupt(f"unsupported wallet version {doc['version']!r}")
            kdf, cipher = doc["kdf"], doc["cipher"]
            if kdf["name"] != "scrypt" or cipher["name"] != "aes-256-gcm":
                raise WalletCorrupt(f"unsupported wallet crypto {kdf['name']}/{cipher['name']}")
            params = ScryptParams(int(kdf["n"]), int(kdf["r"]), int(kdf["p"]))
            keystore = cls(str(doc["network"]), str(doc["address"]), params,
                           bytes.fromhex(kdf["salt"]), bytes.fromhex(cipher["nonce"]),
                           bytes.fromhex(cipher["ciphertext"]), bytes.fromhex(cipher["check"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise WalletCorrupt(f"malformed wallet file: {exc}") from None
        params.validate()
        if len(keystore.nonce) != NONCE_SIZE or len(keystore.check) != 32:
            raise WalletCorrupt("malformed wallet file: bad nonce or check size")
        return keystore


def save(path: Path, keystore: Keystore) -> None:
    """Write atomically with mode 0600; never replaces an existing file.

    The temp file is fsynced, then hard-linked into place (a rename that fails
    instead of overwriting), then the directory is fsynced.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(keystore.to_json())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise WalletExists(f"a wallet already exists at {path}; refusing to overwrite it") from None
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load(path: Path, network: Network) -> Keystore:
    """Read the keystore at ``path`` and check it belongs to ``network``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WalletNotFound(f"no wallet at {path}: create one with 'pouw-cli wallet create'") from None
    keystore = Keystore.from_json(text)
    if keystore.network != network.name:
        raise WalletError(f"wallet {path} is for network {keystore.network}, not {network.name}")
    return keystore


def create(path: Path, key: PrivateKey, network: Network, password: str,
           scrypt: ScryptParams = DEFAULT_SCRYPT) -> Keystore:
    """Seal ``key`` under ``password`` and write it to ``path`` (refusing to overwrite)."""
    if path.exists():
        raise WalletExists(f"a wallet already exists at {path}; refusing to overwrite it")
    keystore = Keystore.seal(key, network, password, scrypt)
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
