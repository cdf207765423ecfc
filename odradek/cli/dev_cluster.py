"""`odradek dev` (what `make run` calls): a local cluster on loopback for trying things out.

Every broker runs in this one process, on consecutive ports, with its own data directory;
with three or more brokers the first three are the metadata voters."""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from odradek.broker.app import Broker, BrokerSettings, ListenError
from odradek.broker.auth.setup import SecuritySettings, has_password
from odradek.broker.data_dir import DataDirError
from odradek.cli.broker_run import metrics_port, setup_logging
from odradek.security.certs import LOCAL_NAMES, Pki, make_pki
from odradek.security.hosts import host_port
from odradek.security.tls import ServerTLS

READY_TIMEOUT_S = 60.0
# `odradek dev`'s Kafka listeners are on the gRPC ports + this, unless --kafka-port says.
KAFKA_PORT_OFFSET = 2000

BANNER = """
Odradek is running: {count} broker(s) on {addrs}
data in {data}

  export ODRADEK_BOOTSTRAP={boot}
  odradek topic create orders --partitions 3
  echo 'hello' | odradek produce orders
  odradek consume orders --from-beginning
  odradek consume orders --group billing --from-beginning   # as a group member
  odradek group describe billing             # members, committed offsets, lag
  grpcurl -plaintext {first} list            # reflection is on
  grpcurl -plaintext {first} grpc.health.v1.Health/Check
{kafka}
(Inside the repository `source .venv/bin/activate` puts odradek on the PATH.)
Press Ctrl-C to stop.
"""

PROMETHEUS_CONFIG = """\
global:
  scrape_interval: {interval}
  evaluation_interval: {interval}
rule_files:
{rules}
scrape_configs:
  - job_name: odradek
    static_configs:
      - targets: [{targets}]
"""


def prometheus_config(targets: list[str], rule_files: list[Path], interval: str = "5s") -> str:
    """A Prometheus configuration scraping `targets` (host:port of metrics endpoints)."""
    rules = "\n".join(f"  - {str(p)!r}" for p in rule_files) or "  []"
    return PROMETHEUS_CONFIG.format(interval=interval, rules=rules,
                                    targets=", ".join(f"{t!r}" for t in targets))


def default_rule_files() -> list[Path]:
    """deploy/prometheus/rules.yml when running from a checkout of the repository."""
    path = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"
    return [path] if path.exists() else []


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class DevPrometheus:
    """`prometheus` scraping the dev brokers, on a free port, its data in a temp dir."""

    def __init__(self, host: str, targets: list[str], interval: str = "5s") -> None:
        self.host = host
        self.targets = targets
        self.interval = interval
        self.port = 0
        self.dir: tempfile.TemporaryDirectory[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> bool:
        binary = shutil.which("prometheus")
        if binary is None:
            return False
        self.dir = tempfile.TemporaryDirectory(prefix="odradek-prometheus-")
        root = Path(self.dir.name)
        config = root / "prometheus.yml"
        config.write_text(prometheus_config(self.targets, default_rule_files(),
                                             self.interval))
        self.port = _free_port(self.host)
        log = open(root / "prometheus.log", "wb")  # noqa: SIM115 - the child keeps it
        with log:
            self.proc = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
                 f"--web.listen-address={self.host}:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.dir is not None:
            self.dir.cleanup()
            self.dir = None


TLS_BANNER = """
Odradek is running with TLS only (mutual TLS required): {count} broker(s) on {addrs}
data in {data}; a throwaway CA and certificates in {pki}

  export ODRADEK_BOOTSTRAP={boot}
  export ODRADEK_TLS_CA={ca}
  export ODRADEK_TLS_CERT={cert}
  export ODRADEK_TLS_KEY={key}
  odradek topic create orders --partitions 3
  echo 'hello' | odradek produce orders
  odradek consume orders --from-beginning
  # or per command: --tls-ca {ca} --tls-cert {cert} --tls-key {key}
  grpcurl -cacert {ca} -cert {cert} -key {key} {first} list

(Inside the repository `source .venv/bin/activate` puts odradek on the PATH.)
Press Ctrl-C to stop.
"""


AUTH_BANNER = """Authorization is on. The super user admin's password is in {password_file}:
  export ODRADEK_USERNAME=admin ODRADEK_PASSWORD_FILE={password_file}
  odradek user create alice            # asks for the password (or $ODRADEK_NEW_USER_PASSWORD)
  odradek acl add --allow-principal User:alice --operation read --operation write --topic orders
  odradek acl list
"""


def kafka_banner(addresses: list[str]) -> str:
    if not addresses:
        return ""
    boot = ",".join(addresses)
    return (f"\nKafka clients: bootstrap {boot}\n"
            f"  kcat -b {boot} -L\n"
            f"  echo 'k1:hello' | kcat -b {boot} -P -t orders -K: -X acks=all\n"
            f"  kcat -b {boot} -C -t orders -o beginning -e\n")


def dev_security(data_dir: Path) -> tuple[SecuritySettings, Path]:
    """Authorization on, with a super user `admin` whose password is made once and kept in
    data_dir/admin.password (owner-only)."""
    path = data_dir / "admin.password"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(18) + "\n")
    password = path.read_text().splitlines()[0]
    # The password file is the way in: an admin user left with another password by an
    # earlier run without authorization is given this one.
    return SecuritySettings(authorization=True, super_users=frozenset({"User:admin"}),
                            bootstrap_user=("admin", password),
                            bootstrap_password_authoritative=True), path


def dev_settings(data_dir: Path, host: str, port: int, count: int,
                 first_metrics_port: int = 0,
                 tls: ServerTLS | None = None,
                 security: SecuritySettings | None = None,
                 first_kafka_port: int = 0) -> list[BrokerSettings]:
    voter_ids = range(min(count, 3) if count >= 3 else count)
    voters = {i: f"{host}:{port + i}" for i in voter_ids}
    return [BrokerSettings(data_dir=data_dir / f"broker-{i}", host=host, port=port + i,
                           broker_id=i, voters=voters, tls=tls,
                           security=security or SecuritySettings(),
                           metrics_port=first_metrics_port + i if first_metrics_port else 0,
                           # They all stop together: handing leadership off is moot.
                           hand_off_s=0,
                           kafka_port=first_kafka_port + i if first_kafka_port else None)
            for i in range(count)]


def dev_tls(data_dir: Path, host: str) -> tuple[ServerTLS, Pki]:
    """A throwaway CA, one broker identity shared by the dev brokers (SANs 127.0.0.1,
    localhost and --host) and a client certificate, under data_dir/tls."""
    sans = tuple(dict.fromkeys((*LOCAL_NAMES, host)))
    pki = make_pki(data_dir / "tls", sans=sans)
    return ServerTLS(pki.broker_cert, pki.broker_key, pki.ca, "required"), pki


async def _run(settings: list[BrokerSettings], with_prometheus: bool = False,
               pki: Pki | None = None, password_file: Path | None = None) -> None:
    brokers = [Broker(s) for s in settings]
    for broker in brokers:
        await broker.start()
    # The commands the banner shows work once every broker is registered (a topic made
    # before that found "0 brokers available").
    try:
        await asyncio.wait_for(asyncio.gather(*(b.serving.wait() for b in brokers)),
                               READY_TIMEOUT_S)
    except TimeoutError:
        print(f"warning: not every broker registered within {READY_TIMEOUT_S:.0f}s",
              file=sys.stderr)
    # Nor does the banner's login work before the admin user is in the metadata.
    user = settings[0].security.bootstrap_user
    if user is not None and not all([await b.cluster.wait_for(
            lambda image: has_password(image.security.users.get(user[0]), user[1]),
            READY_TIMEOUT_S) for b in brokers if b.cluster is not None]):
        print(f"warning: the user {user[0]} did not get the password of "
              f"{settings[0].data_dir.parent / 'admin.password'} within "
              f"{READY_TIMEOUT_S:.0f}s", file=sys.stderr)
    addrs = [host_port(s.host, b.port) for s, b in zip(settings, brokers, strict=True)]
    fields = dict(count=len(brokers), addrs=", ".join(addrs), first=addrs[0],
                  boot=",".join(addrs), data=settings[0].data_dir.parent)
    kafka = [host_port(s.host, b.kafka_port) for s, b in zip(settings, brokers, strict=True)
             if b.kafka is not None]
    if pki is None:
        print(BANNER.format(**fields, kafka=kafka_banner(kafka)), flush=True)
    else:
        print(TLS_BANNER.format(**fields, pki=pki.directory, ca=pki.ca, cert=pki.client_cert,
                                key=pki.client_key), flush=True)
        if kafka:
            print(f"Kafka clients (TLS): bootstrap {','.join(kafka)}\n  kcat -b "
                  f"{','.join(kafka)} -X security.protocol=ssl -X ssl.ca.location={pki.ca} "
                  f"-X ssl.certificate.location={pki.client_cert} "
                  f"-X ssl.key.location={pki.client_key} -L\n", flush=True)
    if password_file is not None:
        print(AUTH_BANNER.format(password_file=password_file), flush=True)
    urls = [b.metrics_url for b in brokers if b.metrics_url is not None]
    for broker in brokers:
        if broker.metrics_url is not None:
            print(f"  broker {broker.settings.broker_id} metrics: {broker.metrics_url}")
    prometheus: DevPrometheus | None = None
    if with_prometheus:
        if not urls:
            print("  --prometheus: no broker serves metrics (--metrics-port 0)")
        else:
            targets = [u.removeprefix("http://").removesuffix("/metrics") for u in urls]
            prometheus = DevPrometheus(settings[0].host, targets)
            if prometheus.start():
                print(f"  prometheus: {prometheus.url} (alerts: {prometheus.url}/alerts)")
            else:
                print("  --prometheus: `prometheus` is not on PATH (Debian: apt-get install "
                      "prometheus)")
                prometheus = None
    print(flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("stopping...", flush=True)
    if prometheus is not None:
        prometheus.stop()
    for broker in brokers:
        await broker.stop()


def run_dev(args: argparse.Namespace) -> int:
    setup_logging(getattr(args, "log_level", "warning"), getattr(args, "log_format", "text"))
    count = max(1, getattr(args, "brokers", 1))
    first_metrics = metrics_port(getattr(args, "metrics_port", -1), args.port)
    data_dir = Path(args.data_dir).resolve()
    tls, pki = dev_tls(data_dir, args.host) if getattr(args, "tls", False) else (None, None)
    security, password_file = (dev_security(data_dir) if getattr(args, "authorization", False)
                               else (None, None))
    if security is not None and count > 1 and tls is None:
        raise SystemExit("error: --authorization with several brokers needs --tls (brokers "
                         "know each other by their certificates)")
    requested = getattr(args, "kafka_port", -1)
    first_kafka = requested if requested >= 0 else args.port + KAFKA_PORT_OFFSET
    if first_kafka + count > 65536:
        first_kafka = 0  # no room above high gRPC ports: Kafka off unless asked for
    settings = dev_settings(data_dir, args.host, args.port, count, first_metrics, tls,
                            security, first_kafka)
    try:
        asyncio.run(_run(settings, bool(getattr(args, "prometheus", False)), pki,
                         password_file))
    except DataDirError as exc:
        raise SystemExit(f"error: {exc} (another `odradek dev` on this directory? "
                         "use --data-dir)") from None
    except ListenError as exc:
        raise SystemExit(f"error: {exc} (another cluster on these ports? use --port)") from None
    return 0
