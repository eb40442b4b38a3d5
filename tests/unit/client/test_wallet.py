"""The keystore: several derived keys, imported keys, labels; sealing, unlocking, changes,
version 1 files, file handling. Uses cheap scrypt params (FAST)."""
from __future__ import annotations

import fcntl
import json
import os
import secrets
import stat
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from consensus.genesis import dev_faucet_key
from consensus.keys import PrivateKey, decode_address, encode_address
from consensus.params import DEV, MAIN, REGTEST, TEST
from client import hdkeys, wallet
from client.wallet import KeyInfo, Keystore, ScryptParams, Secrets

FAST = ScryptParams(n=2**4, r=8, p=1)
ENTROPY = bytes(range(16))


@pytest.fixture
def path(tmp_path):
    return wallet.wallet_path(tmp_path, REGTEST)


def fresh(count: int = 1, password: str = "pw") -> Keystore:
    return wallet.new_keystore(REGTEST, password, ENTROPY, count, FAST)


def v1_file(path, key: PrivateKey, password: str) -> None:
    """A version 1 keystore as the previous release wrote it (the format in node/wallet.py's history)."""
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    aes_key = wallet._derive(password, salt, FAST)
    header = {"version": 1, "network": "regtest", "address": encode_address(REGTEST.hrp, key.address),
              "kdf": {"name": "scrypt", "n": FAST.n, "r": FAST.r, "p": FAST.p, "salt": salt.hex()}}
    aad = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    doc = {**header, "cipher": {"name": "aes-256-gcm", "nonce": nonce.hex(),
                                "ciphertext": AESGCM(aes_key).encrypt(nonce, key.seed, aad).hex(),
                                "check": wallet._check_value(aes_key).hex()}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def test_default_location(tmp_path):
    assert wallet.wallet_path(tmp_path, DEV) == tmp_path / "dev" / "wallet.json"


def test_keys_are_the_seeds_derived_keys(path):
    created = wallet.create(path, fresh(3))
    loaded = wallet.load(path, REGTEST)
    assert loaded == created
    seed = hdkeys.seed_of(ENTROPY)
    expected = [encode_address(REGTEST.hrp, hdkeys.wallet_key(seed, i).address) for i in range(3)]
    assert [k.address for k in loaded.keys] == expected and [k.index for k in loaded.keys] == [0, 1, 2]
    assert loaded.address == expected[0]
    assert loaded.keys[2].path == "m/44'/8733'/0'/0'/2'"
    unlocked = loaded.unlock("pw")
    assert unlocked.secrets == Secrets(ENTROPY, ())
    assert unlocked.signing_key(expected[1]) == hdkeys.wallet_key(seed, 1)
    with pytest.raises(wallet.WalletError, match="not an address of this wallet"):
        unlocked.signing_key(encode_address(REGTEST.hrp, bytes(20)))


def test_file_is_private_json_with_clear_keys(path):
    wallet.create(path, fresh(2))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["version"] == 2 and doc["network"] == "regtest"
    assert [k["index"] for k in doc["keys"]] == [0, 1] and all(k["label"] == "" for k in doc["keys"])
    decode_address(doc["keys"][0]["address"], REGTEST.hrp)
    assert doc["kdf"] == {"name": "scrypt", "n": FAST.n, "r": 8, "p": 1, "salt": doc["kdf"]["salt"]}
    assert len(bytes.fromhex(doc["kdf"]["salt"])) == 16
    assert len(bytes.fromhex(doc["cipher"]["nonce"])) == 12
    text = path.read_text()
    assert ENTROPY.hex() not in text and hdkeys.phrase_of(ENTROPY).split()[0] not in text
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_default_scrypt_cost():
    assert wallet.DEFAULT_SCRYPT == ScryptParams(n=2**15, r=8, p=1)


def test_fresh_salt_and_nonce_each_time():
    a, b = fresh(), fresh()
    assert a.salt != b.salt and a.nonce != b.nonce and a.ciphertext != b.ciphertext


def test_wrong_password(path):
    wallet.create(path, fresh(password="right"))
    with pytest.raises(wallet.WrongPassword):
        wallet.load(path, REGTEST).unlock("wrong")


def test_refuses_to_overwrite(path):
    wallet.create(path, fresh())
    before = path.read_bytes()
    with pytest.raises(wallet.WalletExists):
        wallet.create(path, fresh())
    with pytest.raises(wallet.WalletExists):  # the race-free path under the early check
        wallet.save(path, fresh())
    assert path.read_bytes() == before
    assert list(path.parent.iterdir()) == [path]


def test_new_keys_labels_and_imports_reseal(path):
    wallet.create(path, fresh())
    unlocked = wallet.load(path, REGTEST).unlock("pw")
    grown, new, made_seed = unlocked.with_new_keys(2, "rent")
    assert not made_seed and [(k.index, k.label) for k in new] == [(1, "rent"), (2, "rent")]
    assert grown.keys[:1] == unlocked.keystore.keys and grown.salt == unlocked.keystore.salt
    assert grown.nonce != unlocked.keystore.nonce
    wallet.save(path, grown, overwrite=True)
    reopened = wallet.load(path, REGTEST).unlock("pw")
    labelled = reopened.with_label(new[0].address.upper(), "savings")
    assert [k.label for k in labelled.keys] == ["", "savings", "rent"]
    faucet = wallet.load(path, REGTEST).unlock("pw").with_import(dev_faucet_key(), "faucet")
    assert faucet.keys[-1] == KeyInfo(encode_address(REGTEST.hrp, dev_faucet_key().address), None, "faucet")
    opened = faucet.unlock("pw")
    assert opened.signing_key(faucet.keys[-1].address) == dev_faucet_key()
    with pytest.raises(wallet.WalletExists, match="already in this wallet"):
        opened.with_import(dev_faucet_key())
    more, (after_import,), _ = opened.with_new_keys(1)
    assert after_import.index == 3 and more.unlock("pw").signing_key(after_import.address).address == \
        decode_address(after_import.address, REGTEST.hrp)
    with pytest.raises(wallet.WalletError, match="printable"):
        opened.with_label(faucet.keys[0].address, "a\nb")
    with pytest.raises(wallet.WalletError, match="at most 100"):
        opened.with_new_keys(1, "x" * 101)


def test_imported_only_wallet_gets_a_seed_on_first_new_address():
    keystore = wallet.imported_keystore(REGTEST, "pw", dev_faucet_key(), "faucet", FAST)
    assert keystore.address == encode_address(REGTEST.hrp, dev_faucet_key().address)
    unlocked = keystore.unlock("pw")
    assert unlocked.secrets.entropy is None
    grown, (first,), made_seed = unlocked.with_new_keys(1)
    assert made_seed and first.index == 0
    entropy = grown.unlock("pw").secrets.entropy
    assert len(entropy) == 16
    assert first.address == encode_address(REGTEST.hrp, hdkeys.wallet_key(hdkeys.seed_of(entropy), 0).address)


def test_version_1_file_is_read_and_migrated(path):
    key = PrivateKey.generate()
    v1_file(path, key, "old")
    old_text = path.read_text()
    keystore = wallet.load(path, REGTEST)
    assert keystore.version == 1 and keystore.keys == (KeyInfo(encode_address(REGTEST.hrp, key.address), None),)
    unlocked = keystore.unlock("old")
    assert unlocked.signing_key(keystore.address) == key
    grown, _, made_seed = unlocked.with_new_keys(1, "new")
    assert made_seed
    with wallet.locked(path):
        wallet.save(path, grown, overwrite=True)
    assert path.with_name("wallet.json.v1-backup").read_text() == old_text
    migrated = wallet.load(path, REGTEST)
    assert migrated.version == 2 and len(migrated.keys) == 2
    assert migrated.unlock("old").signing_key(keystore.address) == key


@pytest.mark.parametrize("edit", [
    lambda doc: doc["keys"][0].update(address=encode_address(REGTEST.hrp, bytes(20))),
    lambda doc: doc["keys"][1].update(index=5),
    lambda doc: doc["keys"][1].update(label="mine"),
    lambda doc: doc["keys"].pop(),
])
def test_tampered_clear_keys_detected(path, edit):
    wallet.create(path, fresh(2))
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(wallet.WalletCorrupt):
        wallet.load(path, REGTEST).unlock("pw")


@pytest.mark.parametrize("secrets_", [Secrets(b"\x01" * 5), Secrets(ENTROPY, (b"\x02" * 31,))])
def test_malformed_secrets_refused(secrets_):
    """Secrets sealed under the right password but of the wrong sizes (a hand-made file)."""
    unlocked = fresh().unlock("pw")
    keys = unlocked.keystore.keys + ((KeyInfo(encode_address(REGTEST.hrp, bytes(20)), None),) if secrets_.imported
                                     else ())
    crafted = replace(unlocked.keystore, keys=keys)._sealed(unlocked.aes_key, secrets_)
    with pytest.raises(wallet.WalletCorrupt, match="bad entropy or key size"):
        crafted.unlock("pw")


def test_tampered_ciphertext_detected(path):
    wallet.create(path, fresh())
    doc = json.loads(path.read_text())
    ct = bytearray.fromhex(doc["cipher"]["ciphertext"])
    ct[0] ^= 1
    doc["cipher"]["ciphertext"] = ct.hex()
    path.write_text(json.dumps(doc))
    with pytest.raises(wallet.WalletCorrupt):
        wallet.load(path, REGTEST).unlock("pw")


@pytest.mark.parametrize("text", ["", "{}", "[]", '{"version": 3}', "not json",
                                  '{"version": 2, "network": "regtest", "keys": 5, "kdf": {}, "cipher": {}}'])
def test_malformed_file(path, text):
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(wallet.WalletCorrupt):
        wallet.load(path, REGTEST)


def test_foreign_address_in_file_refused(path):
    wallet.create(path, fresh())
    doc = json.loads(path.read_text())
    doc["keys"][0]["address"] = encode_address(MAIN.hrp, bytes(20))
    path.write_text(json.dumps(doc))
    with pytest.raises(wallet.WalletCorrupt, match="malformed wallet file"):
        wallet.load(path, REGTEST)


def test_absurd_scrypt_cost_refused(path):
    wallet.create(path, fresh())
    doc = json.loads(path.read_text())
    doc["kdf"]["n"] = 2**30
    path.write_text(json.dumps(doc))
    with pytest.raises(wallet.WalletCorrupt, match="scrypt"):
        wallet.load(path, REGTEST)


def test_missing_wallet(path):
    with pytest.raises(wallet.WalletNotFound, match="wallet create"):
        wallet.load(path, REGTEST)


def test_other_networks_wallet_refused(tmp_path):
    path = tmp_path / "w.json"
    wallet.create(path, wallet.new_keystore(DEV, "pw", ENTROPY, 1, FAST))
    with pytest.raises(wallet.WalletError, match="for network dev"):
        wallet.load(path, REGTEST)


def test_lock_is_exclusive(path):
    with wallet.locked(path):
        fd = os.open(path.with_name(".wallet.json.lock"), os.O_WRONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    fd = os.open(path.with_name(".wallet.json.lock"), os.O_WRONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released
    finally:
        os.close(fd)


@pytest.mark.parametrize("network", [DEV, REGTEST])
def test_faucet_key_on_dev_networks(network):
    assert wallet.faucet_key(network) == dev_faucet_key()


@pytest.mark.parametrize("network", [MAIN, TEST])
def test_faucet_key_refused_on_public_networks(network):
    with pytest.raises(wallet.WalletError, match="only on dev and regtest"):
        wallet.faucet_key(network)


def test_password_from_env(monkeypatch):
    monkeypatch.setenv(wallet.PASSWORD_ENV, "from-env")
    monkeypatch.setattr(wallet.getpass, "getpass", lambda prompt: pytest.fail("prompted"))
    assert wallet.read_password(confirm=True) == "from-env"


def test_password_prompt_asks_twice_on_create(monkeypatch):
    monkeypatch.delenv(wallet.PASSWORD_ENV, raising=False)
    answers = iter(["one", "two"])
    monkeypatch.setattr(wallet.getpass, "getpass", lambda prompt: next(answers))
    with pytest.raises(wallet.WalletError, match="do not match"):
        wallet.read_password(confirm=True)
    answers = iter(["same", "same"])
    assert wallet.read_password(confirm=True) == "same"
    answers = iter(["once"])
    assert wallet.read_password() == "once"


def test_empty_password_refused(monkeypatch):
    monkeypatch.setenv(wallet.PASSWORD_ENV, "")
    with pytest.raises(wallet.WalletError, match="empty"):
        wallet.read_password()
