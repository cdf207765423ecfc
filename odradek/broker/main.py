"""`odradek broker`: parse the CLI's arguments into settings and serve."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from odradek.broker.metrics import DEFAULT_METRICS_PORT_OFFSET
from odradek.broker.server import BrokerSettings, serve
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
        if cert or key:
            raise SystemExit("error: --tls-cert/--tls-key given with --listener plaintext")
        return None
    if not cert or not key:
        raise SystemExit("error: --listener tls needs --tls-cert and --tls-key")
    client_auth = getattr(args, "tls_client_auth", None) or ("required" if ca else "none")
    try:
        return ServerTLS(Path(cert), Path(key), Path(ca) if ca else None, client_auth)
    except TLSConfigError as exc:
        raise SystemExit(f"error: {exc}") from None


def run_broker(args: argparse.Namespace) -> int:
    setup_logging(getattr(args, "log_level", "info"), getattr(args, "log_format", "text"))
    try:
        settings = BrokerSettings(
            data_dir=Path(args.data_dir), host=args.host, port=args.port,
            broker_id=args.broker_id, rack=args.rack, voters=parse_voters(args.voters),
            topic_defaults=parse_configs(args.config),
            default_replication_factor=args.default_replication_factor,
            metadata_snapshot_every=args.metadata_snapshot_every,
            offsets_topic_partitions=args.offsets_topic_partitions,
            metrics_port=metrics_port(args.metrics_port, args.port),
            tls=tls_settings(args))
        LogConfig.from_dict(settings.topic_defaults)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc} (INVALID_CONFIG)") from None
    try:
        asyncio.run(serve(settings))
    except TLSConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    return 0
