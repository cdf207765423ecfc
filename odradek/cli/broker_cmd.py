"""The `odradek broker` and `odradek dev` subcommands: flags here, the work in
odradek.broker (imported only when the command runs)."""

from __future__ import annotations

import argparse
import os

from odradek.cli.common import CliError, key_value


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"error: ${name} must be an integer, not {value!r}") from None


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", default=os.environ.get("ODRADEK_LOG_LEVEL", "INFO").upper(),
        type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="logging level (env ODRADEK_LOG_LEVEL, default %(default)s)")
    parser.add_argument(
        "--log-format", default=os.environ.get("ODRADEK_LOG_FORMAT", "text").lower(),
        type=str.lower, choices=["text", "json"],
        help="text, or json: one JSON object per line, for log collectors "
             "(env ODRADEK_LOG_FORMAT, default %(default)s)")


def add_broker_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "broker", help="run a broker", description="Runs one Odradek broker.")
    p.add_argument("--port", type=int, default=_env_int("ODRADEK_PORT", 9092),
                   help="gRPC port (env ODRADEK_PORT, default %(default)s)")
    p.add_argument("--host", default=os.environ.get("ODRADEK_HOST", "127.0.0.1"),
                   help="address to listen on (env ODRADEK_HOST, default %(default)s)")
    data_dir = os.environ.get("ODRADEK_DATA_DIR")
    p.add_argument("--data-dir", default=data_dir, required=data_dir is None,
                   help="where partitions are stored (env ODRADEK_DATA_DIR)")
    p.add_argument("--broker-id", type=int, default=_env_int("ODRADEK_BROKER_ID", 0),
                   help="this broker's id (env ODRADEK_BROKER_ID, default 0)")
    p.add_argument("--voters", default=os.environ.get("ODRADEK_VOTERS", ""),
                   metavar="ID=HOST:PORT,...",
                   help="the metadata voters, e.g. 0=10.0.0.1:9092,1=10.0.0.2:9092,"
                        "2=10.0.0.3:9092 (env ODRADEK_VOTERS; default: this broker alone)")
    p.add_argument("--metrics-port", type=int, default=_env_int("ODRADEK_METRICS_PORT", -1),
                   help="HTTP port serving Prometheus metrics at /metrics (env "
                        "ODRADEK_METRICS_PORT; default: the gRPC port + 1000; 0: off)")
    p.add_argument("--metrics-host", default=os.environ.get("ODRADEK_METRICS_HOST") or None,
                   help="address the metrics are served on (env ODRADEK_METRICS_HOST; "
                        "default: --host)")
    p.add_argument("--metrics-tls", choices=["on", "off"],
                   default=(os.environ.get("ODRADEK_METRICS_TLS") or "off").lower(),
                   help="serve the metrics over HTTPS with the listener's certificate, "
                        "requiring a client certificate when the listener does (env "
                        "ODRADEK_METRICS_TLS, default %(default)s)")
    p.add_argument("--metrics-token-file", metavar="FILE",
                   default=os.environ.get("ODRADEK_METRICS_TOKEN_FILE") or None,
                   help="answer /metrics only to 'Authorization: Bearer <token>', the "
                        "token being this file's first line (env ODRADEK_METRICS_TOKEN_FILE)")
    kafka_port = os.environ.get("ODRADEK_KAFKA_PORT")
    p.add_argument("--kafka-port", type=int, default=_env_int("ODRADEK_KAFKA_PORT", 0)
                   if kafka_port else None,
                   help="serve Kafka clients (kcat, librdkafka, kafka-python) on this port "
                        "of --host (env ODRADEK_KAFKA_PORT; 0: any free port; default: off)")
    p.add_argument("--rack", default=os.environ.get("ODRADEK_RACK") or None,
                   help="rack or zone label, for spreading replicas (env ODRADEK_RACK)")
    p.add_argument("--metadata-snapshot-every", type=int, default=1000, metavar="N",
                   help="snapshot the cluster metadata every N changes (default %(default)s)")
    p.add_argument("--producer-id-expiration-ms", type=_positive_int, default=24 * 3600 * 1000,
                   metavar="MS", help="forget an idempotent producer's sequence state after "
                   "this long without a batch from it (default one day)")
    p.add_argument("--producer-name-expiration-ms", type=_positive_int,
                   default=7 * 24 * 3600 * 1000, metavar="MS",
                   help="forget a producer name (Kafka's transactional.id) after this long "
                   "without an instance initialising or writing (Kafka's "
                   "transactional.id.expiration.ms; default 7 days)")
    p.add_argument("--max-producer-names", type=_positive_int, default=100_000, metavar="N",
                   help="the most producer names the cluster keeps; a new one beyond is "
                   "refused (default %(default)s)")
    p.add_argument("--scrub-bytes-per-second", type=_non_negative_int, default=16 << 20,
                   metavar="N", help="after a start, read back each partition's sealed "
                   "segments at this rate to check their CRCs (a corrupt batch is cut and "
                   "repaired from the other replicas); 0: never (default %(default)s)")
    p.add_argument("--log-cleanup-interval-ms", type=_positive_int, default=30_000,
                   metavar="MS", help="run retention and compaction over every partition "
                   "this often (Kafka's log.retention.check.interval.ms; default 30 s)")
    p.add_argument("--fsync-on-event-loop", action="store_true",
                   help="fsync partition logs on the event loop instead of a worker "
                        "thread (slower: for comparisons in bench/)")
    p.add_argument("--offsets-topic-partitions", type=int, default=8, metavar="N",
                   help="partitions of the internal topic __consumer_offsets when it is "
                        "created (group coordinators are spread over them; default "
                        "%(default)s)")
    p.add_argument("--auto-leader-rebalance", choices=["on", "off"], default="on",
                   help="leaders hand leadership back to each partition's preferred replica "
                        "once it is in sync (Kafka's auto.leader.rebalance.enable); off: "
                        "only on `odradek cluster elect-leaders` (default %(default)s)")
    p.add_argument("--default-replication-factor", type=int, default=3,
                   help="replication factor of topics that do not ask for one, capped by "
                        "the brokers available (default %(default)s)")
    p.add_argument(
        "--config", "-c", action="append", default=[], type=_config_pair, metavar="KEY=VALUE",
        help="broker-level default for a topic config, e.g. retention.ms=3600000 (repeatable)")
    _add_tls_flags(p)
    _add_listener_flags(p)
    _add_auth_flags(p)
    _add_log_level(p)
    # The parser itself, for the configs the broker describes (cli/broker_flags.py).
    p.set_defaults(func=_run_broker, broker_parser=p)
    return p


def _add_tls_flags(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("--listener", choices=["plaintext", "tls"],
                   default=env("ODRADEK_LISTENER") or None,
                   help="what --port speaks (env ODRADEK_LISTENER; default: tls when "
                        "--tls-cert is given, else plaintext). With tls there is no "
                        "plaintext listener")
    p.add_argument("--tls-cert", default=env("ODRADEK_BROKER_TLS_CERT") or None, metavar="PEM",
                   help="this broker's certificate (chain); also its client certificate "
                        "towards other brokers (env ODRADEK_BROKER_TLS_CERT)")
    p.add_argument("--tls-key", default=env("ODRADEK_BROKER_TLS_KEY") or None, metavar="PEM",
                   help="the key of --tls-cert (env ODRADEK_BROKER_TLS_KEY)")
    p.add_argument("--tls-ca", default=env("ODRADEK_BROKER_TLS_CA") or None, metavar="PEM",
                   help="CA bundle that signs client and broker certificates "
                        "(env ODRADEK_BROKER_TLS_CA; the broker's variables are not the "
                        "clients' ODRADEK_TLS_*)")
    p.add_argument("--tls-client-auth", choices=["none", "required"],
                   default=env("ODRADEK_BROKER_TLS_CLIENT_AUTH") or None,
                   help="mutual TLS for clients (env ODRADEK_BROKER_TLS_CLIENT_AUTH; default: "
                        "required when --tls-ca is given, else none). Brokers reach each "
                        "other on this listener, so a cluster needs required")
    p.add_argument("--tls-peer-server-name", metavar="NAME",
                   default=env("ODRADEK_BROKER_TLS_PEER_SERVER_NAME") or None,
                   help="the name checked in other brokers' certificates instead of the host "
                        "of their addresses, for addresses that do not carry it (IPs, "
                        "tunnels; env ODRADEK_BROKER_TLS_PEER_SERVER_NAME)")


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _add_listener_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--extra-listener", action="append", default=_env_list(
                       "ODRADEK_EXTRA_LISTENERS"), metavar="NAME=PROTOCOL[+tls|+mtls]://HOST:PORT",
                   help="a further client listener, e.g. external=grpc+tls://0.0.0.0:9094 or "
                        "external-kafka=kafka+tls://0.0.0.0:9095 (protocol grpc or kafka; +tls: "
                        "the broker's certificate, no client certificate asked, clients log "
                        "in with SCRAM or a token; +mtls: a client certificate required). "
                        "Clients that connect to it are given every broker's address for "
                        "the same listener (repeatable; env ODRADEK_EXTRA_LISTENERS, "
                        "comma-separated)")
    p.add_argument("--advertise", action="append", default=_env_list("ODRADEK_ADVERTISE"),
                   metavar="NAME=HOST:PORT",
                   help="where clients of listener NAME reach this broker (a NodePort, a "
                        "load balancer); default: its bind address (repeatable; env "
                        "ODRADEK_ADVERTISE, comma-separated)")


def _add_auth_flags(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("--authorization", choices=["on", "off"],
                   default=(env("ODRADEK_AUTHORIZATION") or "off").lower(),
                   help="on: every call needs an ACL that allows it (super users excepted); "
                        "users authenticate with SCRAM-SHA-512 or a client certificate "
                        "(env ODRADEK_AUTHORIZATION, default %(default)s)")
    p.add_argument("--super-users", default=env("ODRADEK_SUPER_USERS", ""),
                   metavar="User:A;User:B",
                   help="principals allowed everything (env ODRADEK_SUPER_USERS). The "
                        "brokers' own certificate principal always is one")
    p.add_argument("--broker-principal", action="append", metavar="User:NAME",
                   default=[b for b in (env("ODRADEK_BROKER_PRINCIPALS") or "").split(";")
                            if b.strip()],
                   help="the principal of the brokers' certificates (repeatable; env "
                        "ODRADEK_BROKER_PRINCIPALS, ';'-separated; default: this broker's "
                        "own): only they may call the brokers' Raft and Controller services "
                        "and no SCRAM user may take their names")
    p.add_argument("--tls-principal-rule", action="append", metavar="RULE",
                   default=[r for r in (env("ODRADEK_TLS_PRINCIPAL_RULES") or "").splitlines()
                            if r.strip()],
                   help="how a client certificate names its user, tried in order: "
                        "'RULE:<regex>/<replacement>/' over the subject (CN=a,O=b), "
                        "'SAN:<regex>/<replacement>/' over each SAN (DNS:x, URI:x, IP:x, "
                        "EMAIL:x), 'DEFAULT' (the CN). Repeatable (env "
                        "ODRADEK_TLS_PRINCIPAL_RULES, one per line; default: the CN)")
    p.add_argument("--bootstrap-user", default=env("ODRADEK_BOOTSTRAP_USER") or None,
                   metavar="NAME",
                   help="a SCRAM user to create when none of that name exists (the first "
                        "admin; list it in --super-users). Its password comes from "
                        "--bootstrap-password-file or env ODRADEK_BOOTSTRAP_PASSWORD "
                        "(env ODRADEK_BOOTSTRAP_USER)")
    p.add_argument("--bootstrap-password-file", metavar="FILE",
                   default=env("ODRADEK_BOOTSTRAP_PASSWORD_FILE") or None,
                   help="the first line is the --bootstrap-user's password")
    p.add_argument("--session-lifetime-s", type=float,
                   default=float(env("ODRADEK_SESSION_LIFETIME_S") or 3600),
                   help="how long a SCRAM session token is good for (env "
                        "ODRADEK_SESSION_LIFETIME_S, default %(default)s)")


def add_dev_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "dev", help="run a local development cluster",
        description="Runs a local development broker with its data in --data-dir.")
    p.add_argument("--port", type=int, default=_env_int("ODRADEK_PORT", 9092),
                   help="gRPC port (default %(default)s)")
    p.add_argument("--host", default=os.environ.get("ODRADEK_HOST", "127.0.0.1"),
                   help="address to listen on (default %(default)s)")
    p.add_argument("--data-dir", default=os.environ.get("ODRADEK_DATA_DIR", "./.dev-data"),
                   help="where data is kept (default %(default)s)")
    p.add_argument("--brokers", type=int, default=1,
                   help="how many brokers to run, on consecutive ports (default %(default)s)")
    p.add_argument("--metrics-port", type=int, default=_env_int("ODRADEK_METRICS_PORT", -1),
                   help="first broker's metrics port, the others on the next ports "
                        "(default: --port + 1000; 0: off)")
    p.add_argument("--kafka-port", type=int, default=_env_int("ODRADEK_KAFKA_PORT", -1),
                   help="first broker's Kafka listener port, the others on the next ports "
                        "(default: --port + 2000; 0: off)")
    p.add_argument("--prometheus", action="store_true",
                   help="also run `prometheus` (if installed) scraping every broker")
    p.add_argument("--tls", action="store_true",
                   help="TLS only, mutual TLS required: a throwaway CA, broker and client "
                        "certificates are made under --data-dir/tls")
    p.add_argument("--authorization", action="store_true",
                   help="authorization on, with a super user `admin` (SCRAM) whose password "
                        "is made and kept in --data-dir/admin.password (several brokers "
                        "need --tls)")
    _add_log_level(p)
    p.set_defaults(func=_run_dev)
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    if text.strip() == "0":
        return 0
    return _positive_int(text)


def _config_pair(text: str) -> str:
    """Checks k=v and keeps the text: odradek.broker parses args.config (list of str)."""
    key_value(text)
    return text


def _missing_broker(exc: ModuleNotFoundError) -> CliError:
    return CliError(f"the broker is not available in this installation ({exc})", "UNAVAILABLE")


def _run_broker(args: argparse.Namespace) -> int:
    try:
        from odradek.cli.broker_run import run_broker  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("odradek.broker"):
            raise _missing_broker(exc) from None
        raise

    result = run_broker(args)
    return int(result or 0)


def _run_dev(args: argparse.Namespace) -> int:
    try:
        from odradek.cli.dev_cluster import run_dev  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("odradek.broker"):
            raise _missing_broker(exc) from None
        raise

    result = run_dev(args)
    return int(result or 0)
