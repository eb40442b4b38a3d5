"""Node configuration: defaults < `<datadir>/pouw.toml` < command-line flags < `POUW_*` env vars.

The precedence follows the house architecture (TOML file < flags < env), so a
container can pin anything through its environment.
"""
from __future__ import annotations

import argparse
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

from consensus.params import NETWORKS, Network
from p2p.addrbook import parse_addr

DEFAULT_DATADIR = "~/.pouw"
CONFIG_FILE = "pouw.toml"
DEFAULT_MATRIX_RATE_MB = 8.0  # a safe per-peer rate on the internet (RelayLimits.matrix_rate)


class ConfigError(ValueError):
    """A bad config file, flag or environment value; the message says which."""


@dataclass
class Config:
    network: str = "main"
    datadir: str = DEFAULT_DATADIR
    rpc_bind: str = "127.0.0.1"
    rpc_port: int = 0  # 0: the network's default
    rpc_user: str = ""
    rpc_password: str = ""
    bind: str = ""  # "": loopback on dev/regtest, every interface on main/test
    port: int = 0  # 0: the network's default
    listen: bool = True
    connect: list[str] = field(default_factory=list)
    addnode: list[str] = field(default_factory=list)
    seednode: list[str] = field(default_factory=list)
    max_outbound: int = 8
    max_inbound: int = 64
    max_inbound_per_ip: int = 8
    ban_seconds: int = 24 * 3600
    ban_v6_prefix: int = 64
    log_level: str = "info"
    log_format: str = "human"
    log_file: str = ""
    mempool_max_bytes: int = 64 * 1024 * 1024
    min_relay_fee: int = 1
    matrix_store_mb: int = 4096  # job-market matrices kept under <datadir>/<network>/matrices
    max_upload_mb: int = 1024  # largest matrix upload accepted over HTTP
    matrix_rate: float = DEFAULT_MATRIX_RATE_MB  # MiB/s of getmatrix replies served to each peer; 0: unlimited
    reindex: bool = False
    address_index: bool = False

    @property
    def params(self) -> Network:
        return NETWORKS[self.network]

    @property
    def datadir_path(self) -> Path:
        return Path(self.datadir).expanduser()

    @property
    def network_dir(self) -> Path:
        """``<datadir>/<network>/``: the database, cookie, wallet and logs of one network."""
        return self.datadir_path / self.network

    @property
    def effective_rpc_port(self) -> int:
        return self.rpc_port or self.params.rpc_port

    @property
    def effective_port(self) -> int:
        return self.port or self.params.p2p_port

    @property
    def effective_bind(self) -> str:
        """The p2p listen address: dev and regtest nodes stay on loopback unless told otherwise."""
        return self.bind or ("127.0.0.1" if self.params.faucet else "0.0.0.0")


FIELD_NAMES = frozenset(f.name for f in fields(Config))
_LISTS = {"connect", "addnode", "seednode"}
_BOOLS = {"listen", "reindex", "address_index"}
_FLOATS = {"matrix_rate"}
_INTS = {"rpc_port", "port", "max_outbound", "max_inbound", "max_inbound_per_ip", "ban_seconds", "ban_v6_prefix",
         "mempool_max_bytes", "min_relay_fee", "matrix_store_mb", "max_upload_mb"}


def _coerce(name: str, value: Any, source: str) -> Any:
    """Turn a TOML/flag/env value into the field's type, or raise ConfigError naming the source."""
    try:
        if name in _LISTS:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return list(value)
            raise TypeError
        if name in _BOOLS:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                return value.lower() in ("1", "true", "yes", "on")
            raise TypeError
        if name in _INTS:
            if isinstance(value, (bool, float)):  # TOML 1.5 must not quietly become 1
                raise TypeError
            number = int(value)
            if number < 0:
                raise TypeError
            return number
        if name in _FLOATS:
            if isinstance(value, bool):
                raise TypeError
            return _non_negative_float(value)
        if not isinstance(value, str):
            raise TypeError
        return value
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: bad value {value!r} for '{name}'") from None


def _non_negative_float(value: Any) -> float:
    """A finite number ≥ 0 (from TOML, a flag or the environment), else ValueError."""
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r} is not a finite number ≥ 0")
    return number


def _validate(cfg: Config) -> Config:
    if cfg.network not in NETWORKS:
        raise ConfigError(f"unknown network '{cfg.network}' (choose from {', '.join(NETWORKS)})")
    if cfg.log_format not in ("human", "json"):
        raise ConfigError("log_format must be 'human' or 'json'")
    if cfg.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError("log_level must be debug, info, warning or error")
    for name in sorted(_INTS):  # flags arrive typed by argparse, not through _coerce
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name} must not be negative")
    for name in sorted(_FLOATS):
        value = getattr(cfg, name)
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name} must be a finite number of MiB/s, 0 or more (0: unlimited)")
    for name in ("rpc_port", "port"):
        if getattr(cfg, name) > 65535:
            raise ConfigError(f"{name} must be a TCP port")
    for name in sorted(_LISTS):
        for addr in getattr(cfg, name):
            try:
                parse_addr(addr, cfg.params.p2p_port)
            except ValueError:
                raise ConfigError(f"{name}: bad address {addr!r} (expected host, host:port or [ipv6]:port)") from None
    if not 1 <= cfg.ban_v6_prefix <= 128:
        raise ConfigError("ban_v6_prefix must be between 1 and 128")
    return cfg


def _rate_flag(text: str) -> float:
    try:
        return _non_negative_float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate in MiB/s (a number ≥ 0; 0: unlimited)") from None


def build_parser() -> argparse.ArgumentParser:
    d = Config()
    p = argparse.ArgumentParser(
        prog="pouwd", description="pouw full node daemon.",
        epilog=f"Settings come from <datadir>/{CONFIG_FILE} (keys as the flags, with _), then these flags, "
               "then POUW_* environment variables (POUW_RPC_PORT=...), each overriding the one before. "
               "Per network: RPC port 8732/18732/28732/38732, p2p port 8733/18733/28733/38733 "
               "(main/test/dev/regtest).")
    p.add_argument("--network", choices=sorted(NETWORKS), help=f"which chain (default {d.network})")
    p.add_argument("--datadir", help=f"data directory; the chain lives in <datadir>/<network>/ (default {d.datadir})")
    p.add_argument("--conf", help=f"config file (default <datadir>/{CONFIG_FILE})")
    rpc = p.add_argument_group("JSON-RPC, REST, /health, /metrics, /ws")
    rpc.add_argument("--rpc-bind", "--rpcbind", dest="rpc_bind", metavar="ADDR",
                     help=f"address the API listens on (default {d.rpc_bind})")
    rpc.add_argument("--rpc-port", "--rpcport", dest="rpc_port", type=int, metavar="PORT",
                     help="API port (default: the network's RPC port)")
    rpc.add_argument("--rpc-user", "--rpcuser", dest="rpc_user", metavar="USER",
                     help="HTTP Basic user, with --rpc-password (default: only the cookie file "
                          "<datadir>/<network>/.cookie)")
    rpc.add_argument("--rpc-password", "--rpcpassword", dest="rpc_password", metavar="PASSWORD",
                     help="HTTP Basic password for --rpc-user")
    net = p.add_argument_group("peer-to-peer")
    net.add_argument("--bind", metavar="ADDR",
                     help="address to listen on for peers (default 127.0.0.1 on dev and regtest, 0.0.0.0 on "
                          "main and test)")
    net.add_argument("--port", type=int, help="p2p port (default: the network's p2p port)")
    net.add_argument("--nolisten", dest="listen", action="store_const", const=False,
                     help="accept no inbound connections")
    net.add_argument("--connect", action="append", metavar="HOST[:PORT]",
                     help="connect only to this peer; repeatable")
    net.add_argument("--addnode", action="append", metavar="HOST[:PORT]",
                     help="also keep this peer connected; repeatable")
    net.add_argument("--seednode", action="append", metavar="HOST[:PORT]",
                     help="ask this peer for addresses, then disconnect; repeatable")
    net.add_argument("--max-outbound", dest="max_outbound", type=int, metavar="N",
                     help=f"outbound connections from the address book (default {d.max_outbound})")
    net.add_argument("--max-inbound", dest="max_inbound", type=int, metavar="N",
                     help=f"inbound connections (default {d.max_inbound})")
    net.add_argument("--max-inbound-per-ip", dest="max_inbound_per_ip", type=int, metavar="N",
                     help=f"inbound connections from one IP (default {d.max_inbound_per_ip})")
    net.add_argument("--ban-v6-prefix", dest="ban_v6_prefix", type=int, metavar="BITS",
                     help=f"IPv6 prefix an automatic ban covers (default {d.ban_v6_prefix})")
    logs = p.add_argument_group("logging")
    logs.add_argument("--log-level", dest="log_level", type=str.lower, choices=["debug", "info", "warning", "error"],
                      help=f"(default {d.log_level})")
    logs.add_argument("--log-format", dest="log_format", choices=["human", "json"],
                      help=f"(default {d.log_format})")
    logs.add_argument("--log-file", dest="log_file", metavar="PATH", help="also log to this file (default: none)")
    market = p.add_argument_group("job market")
    market.add_argument("--matrix-store-mb", dest="matrix_store_mb", type=int, metavar="MIB",
                        help=f"job-market matrices kept under <datadir>/<network>/matrices (default {d.matrix_store_mb})")
    market.add_argument("--max-upload-mb", dest="max_upload_mb", type=int, metavar="MIB",
                        help=f"largest matrix upload accepted over HTTP (default {d.max_upload_mb})")
    market.add_argument("--matrix-rate", "--matrixrate", dest="matrix_rate", type=_rate_flag, metavar="MIB/S",
                        help=f"getmatrix bytes served to each peer per second, in MiB (default {d.matrix_rate:g}, "
                             "a safe internet rate; 0: unlimited, for a LAN or a data centre)")
    p.add_argument("--addressindex", dest="address_index", action="store_const", const=True,
                   help="keep an index of each address's txs and mined blocks (wallet history); "
                        "an existing datadir builds it with --reindex")
    p.add_argument("--reindex", action="store_const", const=True,
                   help="rebuild the block index and all state from the stored blocks (repairs a damaged "
                        "database), with progress on the console")
    return p


def load_config(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Resolve the configuration; raises ConfigError with a precise message."""
    env = dict(os.environ if environ is None else environ)
    args = build_parser().parse_args(argv)
    flags = {k: v for k, v in vars(args).items() if v is not None and k != "conf"}
    env_values = {name: _coerce(name, env[f"POUW_{name.upper()}"], f"env POUW_{name.upper()}")
                  for name in FIELD_NAMES if f"POUW_{name.upper()}" in env}
    # The datadir decides where the file is; it may itself come from a flag or env.
    datadir = env_values.get("datadir") or flags.get("datadir") or DEFAULT_DATADIR
    conf_path = Path(args.conf).expanduser() if args.conf else Path(datadir).expanduser() / CONFIG_FILE
    file_values: dict[str, Any] = {}
    if conf_path.exists():
        try:
            raw = tomllib.loads(conf_path.read_text())
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {conf_path}: {exc}") from None
        for key, value in raw.items():
            name = key.replace("-", "_")
            if name not in FIELD_NAMES:
                raise ConfigError(f"{conf_path}: unknown setting '{key}'")
            file_values[name] = _coerce(name, value, str(conf_path))
    elif args.conf:
        raise ConfigError(f"config file {conf_path} does not exist")
    cfg = Config()
    for layer in (file_values, flags, env_values):
        for name, value in layer.items():
            setattr(cfg, name, value)
    return _validate(cfg)
