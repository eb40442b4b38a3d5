"""The keystore: sealing, unlocking, file handling. Uses cheap scrypt params (FAST)."""
from __future__ import annotations

import json
import stat

import pytest

from consensus.genesis import dev_faucet_key
from consensus.keys import PrivateKey, decode_address, encode_address
from consensus.params import DEV, MAIN, REGTEST, TEST
from node import wallet
from node.wallet import Keystore, ScryptParams

FAST = ScryptParams(n=2**4, r=8, p=1)


@pytest.fixture
def path(tmp_path):
    return wallet.wallet_path(tmp_path, REGTEST)


def test_default_location(tmp_path):
    assert wallet.wallet_path(tmp_path, DEV) == tmp_path / "dev" / "wallet.json"


def test_create_and_unlock_round_trip(path):
    key = PrivateKey.generate()
    created = wallet.create(path, key, REGTEST, "hunter2", FAST)
    loaded = wallet.load(path, REGTEST)
    assert loaded == created
    assert loaded.address == encode_address(REGTEST.hrp, key.address)
    assert loaded.unlock("hunter2").seed == key.seed


def test_file_is_private_json_with_clear_address(path):
    key = PrivateKey.generate()
    wallet.create(path, key, REGTEST, "pw", FAST)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert doc["version"] == 1 and doc["network"] == "regtest"
    assert decode_address(doc["address"], REGTEST.hrp) == key.address
    assert doc["kdf"] == {"name": "scrypt", "n": FAST.n, "r": 8, "p": 1, "salt": doc["kdf"]["salt"]}
    assert len(bytes.fromhex(doc["kdf"]["salt"])) == 16
    assert len(bytes.fromhex(doc["cipher"]["nonce"])) == 12
    assert key.seed.hex() not in path.read_text()
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_default_scrypt_cost():
    assert wallet.DEFAULT_SCRYPT == ScryptParams(n=2**15, r=8, p=1)


def test_fresh_salt_and_nonce_each_time():
    key = PrivateKey.generate()
    a, b = (Keystore.seal(key, REGTEST, "pw", FAST) for _ in range(2))
    assert a.salt != b.salt and a.nonce != b.nonce and a.ciphertext != b.ciphertext


def test_wrong_password(path):
    wallet.create(path, PrivateKey.generate(), REGTEST, "right", FAST)
    with pytest.raises(wallet.WrongPassword):
        wallet.load(path, REGTEST).unlock("wrong")


def test_refuses_to_overwrite(path):
    key = PrivateKey.generate()
    wallet.create(path, key, REGTEST, "pw", FAST)
    before = path.read_bytes()
    with pytest.raises(wallet.WalletExists):
        wallet.create(path, PrivateKey.generate(), REGTEST, "pw", FAST)
    with pytest.raises(wallet.WalletExists):  # the race-free path under the early check
        wallet.save(path, Keystore.seal(PrivateKey.generate(), REGTEST, "pw", FAST))
    assert path.read_bytes() == before
    assert list(path.parent.iterdir()) == [path]


def test_tampered_ciphertext_detected(path):
    wallet.create(path, PrivateKey.generate(), REGTEST, "pw", FAST)
    doc = json.loads(path.read_text())
    ct = bytearray.fromhex(doc["cipher"]["ciphertext"])
    ct[0] ^= 1
    doc["cipher"]["ciphertext"] = ct.hex()
    path.write_text(json.dumps(doc))
    with pytest.raises(wallet.WalletCorrupt):
        wallet.load(path, REGTEST).unlock("pw")


def test_tampered_clear_address_detected(path):
    wallet.create(path, PrivateKey.generate(), REGTEST, "pw", FAST)
    doc = json.loads(path.read_text())
    doc["address"] = encode_address(REGTEST.hrp, bytes(20))
    path.write_text(json.dumps(doc))
    with pytest.raises(wallet.WalletCorrupt):
        wallet.load(path, REGTEST).unlock("pw")


@pytest.mark.parametrize("text", ["", "{}", "[]", '{"version": 2}', "not json"])
def test_malformed_file(path, text):
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(wallet.WalletCorrupt):
        wallet.load(path, REGTEST)


def test_absurd_scrypt_cost_refused(path):
    wallet.create(path, PrivateKey.generate(), REGTEST, "pw", FAST)
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
    wallet.create(path, PrivateKey.generate(), DEV, "pw", FAST)
    with pytest.raises(wallet.WalletError, match="for network dev"):
        wallet.load(path, REGTEST)


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
