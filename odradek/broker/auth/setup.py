"""Security settings of a broker, and the pieces built from them."""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass, field

from odradek.broker.auth.guard import Guard
from odradek.broker.auth.sessions import DEFAULT_SESSION_LIFETIME_S, Sessions
from odradek.broker.cluster import ClusterNode
from odradek.broker.errors import BrokerError
from odradek.broker.metadata.image import MetadataImage
from odradek.broker.metadata.security import InitClusterSecret, UpsertUser, UserCredential
from odradek.security import scram
from odradek.security.principal import PrincipalRule, principal_of_certificate
from odradek.security.tls import ServerTLS, TLSConfigError

log = logging.getLogger("odradek.broker")


@dataclass
class SecuritySettings:
    # With authorization on, what no ACL allows is denied (super users excepted).
    authorization: bool = False
    super_users: frozenset[str] = frozenset()
    # How a client certificate becomes a principal (empty: User:<CN>).
    principal_rules: tuple[PrincipalRule, ...] = field(default_factory=tuple)
    session_lifetime_s: float = DEFAULT_SESSION_LIFETIME_S
    # The principals of the brokers' certificates (empty: this broker's own): only they
    # may call the brokers' services, and no SCRAM user may take their names.
    broker_principals: frozenset[str] = frozenset()
    # A SCRAM user the controller creates when it does not exist yet (the first admin
    # of a cluster with authorization on): (name, password). Never logged.
    bootstrap_user: tuple[str, str] | None = field(default=None, repr=False)
    # The bootstrap password is the one that counts (`odradek dev`, whose password file is
    # the only way in): a user of that name with another password gets this one.
    bootstrap_password_authoritative: bool = False


def parse_super_users(text: str) -> frozenset[str]:
    """"User:admin;User:ops" (commas work too) -> the set; ValueError on a bad name."""
    names = {item.strip() for item in text.replace(",", ";").split(";") if item.strip()}
    for name in names:
        if not name.startswith("User:") or len(name) == len("User:"):
            raise ValueError(f"a super user is written User:<name>, got {name!r}")
    return frozenset(names)


def broker_principal(tls: ServerTLS | None, rules: tuple[PrincipalRule, ...]) -> str | None:
    """The principal other brokers see when this one dials them with its certificate."""
    if tls is None:
        return None
    try:
        return principal_of_certificate(tls.cert.read_bytes(), rules)
    except (OSError, ValueError) as exc:
        raise TLSConfigError(f"cannot read the broker certificate {tls.cert}: {exc}") from None


def build_guard(settings: SecuritySettings, tls: ServerTLS | None, brokers_known: int,
                cluster: ClusterNode) -> Guard:
    """The guard of a broker's RPCs. The brokers' own certificate principal is a super
    user (brokers call each other's internal services); so, with authorization on, a
    cluster of several brokers needs mutual TLS between them."""
    super_users = set(settings.super_users)
    own = broker_principal(tls, settings.principal_rules)
    brokers = settings.broker_principals or frozenset({own} if own else ())
    if settings.broker_principals and own is not None and own not in brokers:
        raise TLSConfigError(
            f"this broker's certificate maps to {own}, which is not one of --broker-principal "
            f"{';'.join(sorted(brokers))}: other brokers would refuse it")
    if settings.authorization:
        # brokers_known: the voters and this broker (an observer is not one of them).
        if brokers_known > 1 and (tls is None or not tls.require_client_auth):
            raise TLSConfigError(
                "with --authorization on, brokers must know each other by certificate: a "
                "cluster of several brokers needs TLS with --tls-client-auth required")
        if brokers:
            super_users.update(brokers)
            log.info("authorization on; the brokers' principals %s are super users",
                     ", ".join(sorted(brokers)))
    sessions = Sessions(lambda: cluster.image.security.users, settings.session_lifetime_s,
                        cluster_secret=lambda: cluster.image.security.cluster_secret)
    return Guard(lambda: cluster.image.security, sessions, enabled=settings.authorization,
                 super_users=frozenset(super_users), principal_rules=settings.principal_rules,
                 broker_principals=brokers)


def has_password(user: UserCredential | None, password: str) -> bool:
    """Whether the stored credential is the one of this password."""
    if user is None:
        return False
    c = scram.credential_of_salted(scram.salted_password(password, user.salt, user.iterations),
                                   user.salt, user.iterations)
    return hmac.compare_digest(c.stored_key, user.stored_key)


async def ensure_bootstrap_user(cluster: ClusterNode, name: str, password: str,
                                authoritative: bool = False) -> None:
    """Creates the user once, from the controller, if no user of that name exists (or, when
    `authoritative`, while its password is another one: a data directory used before
    without authorization may hold a user of that name). The password is hashed here and
    only the SCRAM credential goes into the metadata log."""

    def done(image: MetadataImage) -> bool:
        user = image.security.users.get(name)
        return user is not None and (not authoritative or has_password(user, password))

    while not done(cluster.image):
        if cluster.is_controller() and cluster.id in cluster.image.brokers:
            existed = name in cluster.image.security.users
            c = scram.make_credential(password)
            try:
                await cluster.propose(UpsertUser(name, scram.MECHANISM, c.salt, c.iterations,
                                                 c.stored_key, c.server_key))
                if existed:
                    log.warning("the user %r existed with another password: it now has the "
                                "bootstrap password", name)
                else:
                    log.info("created the bootstrap user %r", name)
            except BrokerError as exc:
                log.warning("cannot create the bootstrap user yet: %s", exc.message)
        await cluster.wait_for(done, 1.0)


async def ensure_cluster_secret(cluster: ClusterNode) -> None:
    """The controller writes the cluster secret once (the first command wins)."""
    while not cluster.image.security.cluster_secret:
        if cluster.is_controller() and cluster.id in cluster.image.brokers:
            try:
                await cluster.propose(InitClusterSecret(secrets.token_bytes(32)))
            except BrokerError as exc:
                log.warning("cannot write the cluster secret yet: %s", exc.message)
        await cluster.wait_for(lambda image: bool(image.security.cluster_secret), 1.0)
