"""node.config.load_config: defaults < <datadir>/pouw.toml < flags < POUW_* env, and clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from node.config import CONFIG_FILE, Config, ConfigError, load_config


def write_conf(datadir: Path, text: str) -> Path:
    datadir.mkdir(parents=True, exist_ok=True)
    path = datadir / CONFIG_FILE
    path.write_text(text)
    return path


def load(datadir: Path, *flags: str, **env: str) -> Config:
    return load_config(["--datadir", str(datadir), *flags], env)


def test_defaults_without_a_file(tmp_path) -> None:
    cfg = load(tmp_path)
    assert cfg.network == "main" and cfg.rpc_port == 0 and cfg.effective_rpc_port == 8732
    assert cfg.effective_port == 8733 and cfg.rpc_bind == "127.0.0.1" and cfg.listen is True
    assert cfg.network_dir == tmp_path / "main" and cfg.log_format == "human"
    regtest = load(tmp_path, "--network", "regtest")
    assert regtest.effective_rpc_port == 38732 and regtest.effective_port == 38733


def test_precedence_file_flag_env(tmp_path) -> None:
    write_conf(tmp_path, 'network = "regtest"\nrpc_port = 1111\nrpc_user = "fromfile"\nport = 2222\n')
    cfg = load(tmp_path)
    assert (cfg.network, cfg.rpc_port, cfg.rpc_user, cfg.port) == ("regtest", 1111, "fromfile", 2222)
    cfg = load(tmp_path, "--rpc-port", "3333")
    assert (cfg.rpc_port, cfg.rpc_user, cfg.port) == (3333, "fromfile", 2222)
    cfg = load(tmp_path, "--rpc-port", "3333", POUW_RPC_PORT="4444", POUW_RPC_USER="fromenv")
    assert (cfg.rpc_port, cfg.rpc_user, cfg.port, cfg.network) == (4444, "fromenv", 2222, "regtest")
    cfg = load(tmp_path, "--network", "dev", POUW_NETWORK="test")
    assert cfg.network == "test"
    # other POUW_* variables are no settings and are ignored
    assert load(tmp_path, POUW_WALLET_PASSWORD="x", POUW_DATADIR_X="y").rpc_port == 1111


def test_env_datadir_finds_the_file(tmp_path) -> None:
    write_conf(tmp_path / "a", "rpc_port = 1001\n")
    write_conf(tmp_path / "b", "rpc_port = 1002\n")
    assert load_config([], {"POUW_DATADIR": str(tmp_path / "a")}).rpc_port == 1001
    # env beats the flag for the datadir too, and the file follows the datadir
    cfg = load_config(["--datadir", str(tmp_path / "a")], {"POUW_DATADIR": str(tmp_path / "b")})
    assert cfg.rpc_port == 1002 and cfg.datadir == str(tmp_path / "b")


def test_explicit_conf(tmp_path) -> None:
    conf = tmp_path / "elsewhere.toml"
    conf.write_text("rpc_port = 5555\n")
    write_conf(tmp_path / "d", "rpc_port = 1\n")
    assert load(tmp_path / "d", "--conf", str(conf)).rpc_port == 5555
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path, "--conf", str(tmp_path / "missing.toml"))


def test_dashed_keys_and_types(tmp_path) -> None:
    write_conf(tmp_path, 'rpc-port = 7\nconnect = ["127.0.0.1:1", "127.0.0.1:2"]\nlisten = false\n'
                         'reindex = true\nlog-level = "DEBUG"\nmempool_max_bytes = 1000\nmin_relay_fee = 0\n')
    cfg = load(tmp_path)
    assert cfg.rpc_port == 7 and cfg.connect == ["127.0.0.1:1", "127.0.0.1:2"]
    assert cfg.listen is False and cfg.reindex is True and cfg.log_level == "DEBUG"
    assert cfg.mempool_max_bytes == 1000 and cfg.min_relay_fee == 0


def test_env_values_are_parsed(tmp_path) -> None:
    cfg = load(tmp_path, POUW_CONNECT="a:1, b:2,,", POUW_LISTEN="off", POUW_REINDEX="yes", POUW_MAX_INBOUND="3")
    assert cfg.connect == ["a:1", "b:2"] and cfg.listen is False and cfg.reindex is True and cfg.max_inbound == 3
    assert load(tmp_path, POUW_LISTEN="1").listen is True


def test_flags(tmp_path) -> None:
    cfg = load(tmp_path, "--nolisten", "--connect", "x:1", "--connect", "y:2", "--addnode", "z:3",
               "--log-format", "json", "--reindex", "--rpc-user", "u", "--rpc-password", "p")
    assert cfg.listen is False and cfg.connect == ["x:1", "y:2"] and cfg.addnode == ["z:3"]
    assert cfg.log_format == "json" and cfg.reindex is True and (cfg.rpc_user, cfg.rpc_password) == ("u", "p")
    # a flag not given leaves the file's value alone (flags default to "unset", not to False)
    write_conf(tmp_path, "listen = false\n")
    assert load(tmp_path).listen is False


@pytest.mark.parametrize("text, match", [
    ("rpc_port = ", "cannot read config file"),
    ("rpc_port = 1\nrpc_port = 2\n", "cannot read config file"),
    ("[rpc]\nport = 1\n", "unknown setting 'rpc'"),
    ("rpcport = 1\n", "unknown setting 'rpcport'"),
    ('rpc_port = "abc"\n', "bad value 'abc' for 'rpc_port'"),
    ("rpc_port = -1\n", "bad value -1 for 'rpc_port'"),
    ("rpc_port = true\n", "bad value True for 'rpc_port'"),
    ("rpc_port = 1.5\n", "bad value 1.5 for 'rpc_port'"),
    ("rpc_port = 70000\n", "rpc_port must be a TCP port"),
    ("listen = 3\n", "bad value 3 for 'listen'"),
    ('listen = "maybe"\n', "bad value 'maybe' for 'listen'"),
    ("connect = [1, 2]\n", "for 'connect'"),
    ("rpc_user = 5\n", "bad value 5 for 'rpc_user'"),
    ('network = "moon"\n', "unknown network 'moon'"),
    ('log_format = "xml"\n', "log_format must be"),
    ('log_level = "loud"\n', "log_level must be"),
])
def test_bad_file(tmp_path, text, match) -> None:
    path = write_conf(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as info:
        load(tmp_path)
    if "unknown network" not in match and "must be" not in match:
        assert str(path) in str(info.value)


def test_bad_file_bytes(tmp_path) -> None:
    (tmp_path / CONFIG_FILE).write_bytes(b"rpc_port = 1\n\xff\xfe\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(tmp_path)


@pytest.mark.parametrize("name, value", [("POUW_RPC_PORT", "x"), ("POUW_RPC_PORT", ""), ("POUW_PORT", "-5"),
                                         ("POUW_LISTEN", "perhaps"), ("POUW_MAX_OUTBOUND", "1.0")])
def test_bad_env(tmp_path, name, value) -> None:
    with pytest.raises(ConfigError, match=f"env {name}"):
        load(tmp_path, **{name: value})


def test_bad_flag_values_exit_like_argparse(tmp_path) -> None:
    with pytest.raises(SystemExit):
        load(tmp_path, "--rpc-port", "abc")
    with pytest.raises(SystemExit):
        load(tmp_path, "--network", "moon")
    with pytest.raises(ConfigError, match="rpc_port must be a TCP port"):
        load(tmp_path, "--rpc-port", "65536")


@pytest.mark.parametrize("flag", ["--rpc-port", "--port", "--max-outbound", "--max-inbound"])
def test_negative_flags_are_refused(tmp_path, flag) -> None:
    name = flag[2:].replace("-", "_")
    with pytest.raises(ConfigError, match=f"{name} must not be negative"):
        load(tmp_path, flag, "-5")


def test_address_index_flag_file_env(tmp_path) -> None:
    assert load(tmp_path).address_index is False  # off by default
    assert load(tmp_path, "--addressindex").address_index is True
    assert load(tmp_path, POUW_ADDRESS_INDEX="true").address_index is True
    write_conf(tmp_path, "address-index = true\n")
    assert load(tmp_path).address_index is True
    assert load(tmp_path, POUW_ADDRESS_INDEX="0").address_index is False


def test_matrix_rate_flag_file_env(tmp_path) -> None:
    """--matrix-rate (MiB/s of getmatrix replies per peer): a safe default, 0 for unlimited,
    fractions allowed, from a flag, the file or the environment."""
    assert load(tmp_path).matrix_rate == 8.0
    assert load(tmp_path, "--matrix-rate", "0").matrix_rate == 0.0
    assert load(tmp_path, "--matrixrate", "512").matrix_rate == 512.0
    assert load(tmp_path, POUW_MATRIX_RATE="0.5").matrix_rate == 0.5
    write_conf(tmp_path, "matrix-rate = 100\n")
    assert load(tmp_path).matrix_rate == 100.0
    write_conf(tmp_path, "matrix_rate = 12.5\n")
    assert load(tmp_path).matrix_rate == 12.5


@pytest.mark.parametrize("value", ["-1", "abc", "nan", "inf", ""])
def test_bad_matrix_rate_is_refused(tmp_path, value) -> None:
    with pytest.raises(SystemExit):
        load(tmp_path, "--matrix-rate", value)
    with pytest.raises(ConfigError, match="env POUW_MATRIX_RATE: bad value"):
        load(tmp_path, POUW_MATRIX_RATE=value)


@pytest.mark.parametrize("text", ["matrix_rate = -2\n", "matrix_rate = true\n", 'matrix_rate = "fast"\n',
                                  "matrix_rate = inf\n"])
def test_bad_matrix_rate_in_the_file(tmp_path, text) -> None:
    path = write_conf(tmp_path, text)
    with pytest.raises(ConfigError, match=f"{path}: bad value .* for 'matrix_rate'"):
        load(tmp_path)
