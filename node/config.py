"""Node configuration: defaults < `<datadir>/pouw.toml` < command-line flags < `POUW_*` env vars.

The precedence follows the house architecture (TOML file < flags < env), so a
container can pin anything through its environment.
"""
from __future__ import annotations

import argparse
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

from consensus.params import NETWORKS, Network

DEFAULT_DATADIR = "~/.pouw"
CONFIG_FILE = "pouw.toml"


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
    bind: str = "0.0.0.0"
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
    reindex: bool = False

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


FIELD_NAMES = frozenset(f.name for f in fields(Config))
_LISTS = {"connect", "addnode", "seednode"}
_BOOLS = {"listen", "reindex"}
_INTS = {"rpc_port", "port", "max_outbound", "max_inbound", "max_inbound_per_ip", "ban_seconds", "ban_v6_prefix",
         "mempool_max_bytes", "min_relay_fee"}


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
        if not isinstance(value, str):
            raise TypeError
        return value
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: bad value {value!r} for '{name}'") from None


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
    for name in ("rpc_port", "port"):
        if getattr(cfg, name) > 65535:
            raise ConfigError(f"{name} must be a TCP port")
    if not 1 <= cfg.ban_v6_prefix <= 128:
        raise ConfigError("ban_v6_prefix must be between 1 and 128")
    return cfg


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pouwd", description="pouw full node daemon")
    p.add_argument("--network", choices=sorted(NETWORKS))
    p.add_argument("--datadir")
    p.add_argument("--conf", help=f"config file (default <datadir>/{CONFIG_FILE})")
    p.add_argument("--rpc-bind", dest="rpc_bind")
    p.add_argument("--rpc-port", dest="rpc_port", type=int)
    p.add_argument("--rpc-user", dest="rpc_user")
    p.add_argument("--rpc-password", dest="rpc_password")
    p.add_argument("--bind")
    p.add_argument("--port", type=int)
    p.add_argument("--nolisten", dest="listen", action="store_const", const=False)
    p.add_argument("--connect", action="append", help="connect only to this peer (host:port); repeatable")
    p.add_argument("--addnode", action="append", help="also connect to this peer; repeatable")
    p.add_argument("--seednode", action="append", help="ask this peer for addresses; repeatable")
    p.add_argument("--max-outbound", dest="max_outbound", type=int)
    p.add_argument("--max-inbound", dest="max_inbound", type=int)
    p.add_argument("--max-inbound-per-ip", dest="max_inbound_per_ip", type=int)
    p.add_argument("--ban-v6-prefix", dest="ban_v6_prefix", type=int, help="IPv6 prefix an automatic ban covers (64)")
    p.add_argument("--log-level", dest="log_level")
    p.add_argument("--log-format", dest="log_format", choices=["human", "json"])
    p.add_argument("--log-file", dest="log_file")
    p.add_argument("--reindex", action="store_const", const=True, help="rebuild index and state from stored blocks")
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
