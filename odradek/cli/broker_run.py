"""`odradek broker`: parse the CLI's arguments into settings and serve."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from odradek.broker.app import BrokerSettings, ListenError, serve
from odradek.broker.auth.setup import SecuritySettings, parse_super_users
from odradek.broker.data_dir import DataDirError
from odradek.broker.listeners import (
    ListenerConfigError,
    ListenerSpec,
    combine,
    parse_advertised,
    parse_listener,
)
from odradek.broker.metrics.broker import DEFAULT_METRICS_PORT_OFFSET
from odradek.cli.allocator import tune_malloc
from odradek.cli.broker_flags import describe_flags
from odradek.security.principal import PrincipalRule, PrincipalRuleError
from odradek.security.tls import ServerTLS, TLSConfigError
from odradek.storage import ConfigError, LogConfig


def parse_configs(pairs: list[str] | None) -> dict[str, str]:
    configs = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --config expects key=value, got {pair!r}")
        configs[key.strip()] = value.strip()
    return configs


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and the
    exception's traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler],
                        force=True)


def parse_voters(text: str) -> dict[int, str]:
    voters: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        broker, sep, address = item.partition("=")
        if not sep or not broker.strip().isdigit() or ":" not in address:
            raise SystemExit(f"error: --voters expects id=host:port,..., got {item!r}")
        voters[int(broker)] = address.strip()
    return voters


def metrics_port(requested: int, grpc_port: int) -> int:
    """--metrics-port: negative (not given) means the gRPC port + 1000."""
    if requested >= 0:
        return requested
    return grpc_port + DEFAULT_METRICS_PORT_OFFSET if grpc_port > 0 else 0


def tls_settings(args: argparse.Namespace) -> ServerTLS | None:
    cert, key, ca = (getattr(args, name, None) for name in ("tls_cert", "tls_key", "tls_ca"))
    listener = getattr(args, "listener", None) or ("tls" if cert else "plaintext")
    if listener == "plaintext":
        if cert or key or getattr(args, "tls_peer_server_name", None):
            raise SystemExit("error: --tls-cert/--tls-key/--tls-peer-server-name given with "
                             "--listener plaintext")
        return None
    if not cert or not key:
        raise SystemExit("error: --listener tls needs --tls-cert and --tls-key")
    client_auth = getattr(args, "tls_client_auth", None) or ("required" if ca else "none")
    try:
        return ServerTLS(Path(cert), Path(key), Path(ca) if ca else None, client_auth,
                         getattr(args, "tls_peer_server_name", None))
    except TLSConfigError as exc:
        raise SystemExit(f"error: {exc}") from None


def listener_settings(args: argparse.Namespace,
                      tls: ServerTLS | None) -> tuple[ListenerSpec, ...]:
    try:
        return combine([parse_listener(v) for v in getattr(args, "extra_listener", None) or ()],
                       [parse_advertised(v, args.broker_id)
                        for v in getattr(args, "advertise", None) or ()],
                       has_tls=tls is not None, has_ca=tls is not None and tls.ca is not None)
    except ListenerConfigError as exc:
        raise SystemExit(f"error: {exc}") from None


def security_settings(args: argparse.Namespace) -> SecuritySettings:
    try:
        rules = tuple(PrincipalRule.parse(r) for r in getattr(args, "tls_principal_rule", None)
                      or ())
        super_users = parse_super_users(getattr(args, "super_users", "") or "")
        brokers = parse_super_users(";".join(getattr(args, "broker_principal", None) or ()))
    except (PrincipalRuleError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    lifetime = float(getattr(args, "session_lifetime_s", 3600.0))
    if lifetime <= 0:
        raise SystemExit("error: --session-lifetime-s must be positive")
    return SecuritySettings(authorization=getattr(args, "authorization", "off") == "on",
                            super_users=super_users, principal_rules=rules,
                            broker_principals=brokers,
                            session_lifetime_s=lifetime, bootstrap_user=bootstrap_user(args))


def metrics_token(path: str | None) -> str | None:
    if not path:
        return None
    try:
        token = (Path(path).read_text(encoding="utf-8").splitlines() or [""])[0].strip()
    except OSError as exc:
        raise SystemExit(f"error: cannot read --metrics-token-file: {exc}") from None
    if not token:
        raise SystemExit("error: --metrics-token-file holds no token")
    return token


def bootstrap_user(args: argparse.Namespace) -> tuple[str, str] | None:
    name = getattr(args, "bootstrap_user", None)
    if not name:
        return None
    path = getattr(args, "bootstrap_password_file", None)
    try:
        password = (Path(path).read_text(encoding="utf-8").splitlines() or [""])[0] if path \
            else os.environ.get("ODRADEK_BOOTSTRAP_PASSWORD", "")
    except OSError as exc:
        raise SystemExit(f"error: cannot read --bootstrap-password-file: {exc}") from None
    if not password:
        raise SystemExit("error: --bootstrap-user needs a password (--bootstrap-password-file "
                         "or ODRADEK_BOOTSTRAP_PASSWORD)")
    return name, password


def run_broker(args: argparse.Namespace) -> int:
    setup_logging(getattr(args, "log_level", "info"), getattr(args, "log_format", "text"))
    try:
        settings = BrokerSettings(
            data_dir=Path(args.data_dir), host=args.host, port=args.port,
            broker_id=args.broker_id, rack=args.rack, voters=parse_voters(args.voters),
            topic_defaults=parse_configs(args.config),
            default_replication_factor=args.default_replication_factor,
            metadata_snapshot_every=args.metadata_snapshot_every,
            producer_id_expiration_ms=args.producer_id_expiration_ms,
            producer_name_expiration_ms=args.producer_name_expiration_ms,
            max_producer_names=args.max_producer_names,
            scrub_bytes_per_s=args.scrub_bytes_per_second,
            retention_check_interval_ms=args.log_cleanup_interval_ms,
            fsync_in_worker=not args.fsync_on_event_loop,
            offsets_topic_partitions=args.offsets_topic_partitions,
            auto_leader_rebalance=args.auto_leader_rebalance == "on",
            flags=describe_flags(args.broker_parser, args),
            kafka_port=getattr(args, "kafka_port", None),
            metrics_port=metrics_port(args.metrics_port, args.port),
            metrics_host=args.metrics_host, metrics_tls=args.metrics_tls == "on",
            metrics_token=metrics_token(args.metrics_token_file),
            tls=tls_settings(args), security=security_settings(args))
        settings.listeners = listener_settings(args, settings.tls)
        LogConfig.from_dict(settings.topic_defaults)
        if settings.metrics_tls and settings.tls is None:
            raise SystemExit("error: --metrics-tls on serves the listener's certificate: it "
                             "needs --listener tls with --tls-cert and --tls-key")
    except ConfigError as exc:
        raise SystemExit(f"error: {exc} (INVALID_CONFIG)") from None
    tune_malloc()
    try:
        asyncio.run(serve(settings))
    except (TLSConfigError, DataDirError, ListenError) as exc:
        raise SystemExit(f"error: {exc}") from None
    return 0
