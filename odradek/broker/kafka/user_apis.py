"""Kafka's SCRAM credential APIs (DescribeUserScramCredentials,
AlterUserScramCredentials) over the users in the cluster metadata, the ones gRPC's
Security service manages and both listeners log in against. Only SCRAM-SHA-512 exists
here; the client sends the salted password, from which the stored keys are derived."""

from __future__ import annotations

from typing import Any

from odradek.broker.auth import operations as op
from odradek.broker.auth.access import Access
from odradek.broker.cluster import ClusterNode
from odradek.broker.errors import BrokerError, Reason
from odradek.broker.kafka import codec
from odradek.broker.kafka import errors as err
from odradek.broker.metadata.security import MAX_USER_NAME, DeleteUser, UpsertUser
from odradek.security import scram

SCRAM_SHA_512 = 2  # Kafka's ScramMechanism number


def _check(name: str, mechanism: int) -> None:
    if not name or len(name) > MAX_USER_NAME:
        raise BrokerError(Reason.INVALID_REQUEST, f"a user name has 1 to {MAX_USER_NAME} "
                          "characters")
    if mechanism != SCRAM_SHA_512:
        raise BrokerError(Reason.UNSUPPORTED_SASL_MECHANISM,
                          f"only {scram.MECHANISM} credentials exist here")


class UserApis:
    def __init__(self, cluster: ClusterNode) -> None:
        self.cluster = cluster

    def describe(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(50, version)
        try:
            op.describe_cluster(access)
        except Exception as exc:
            code, message = err.error_of(exc, "DescribeUserScramCredentials")
            return codec.make(module.DescribeUserScramCredentialsResponse, error_code=code,
                              error_message=message, results=())
        users = self.cluster.image.security.users
        names = [u.name for u in body.users] if body.users else sorted(users)
        results = []
        for name in names:
            known = users.get(name)
            results.append(codec.nested(
                module, "DescribeUserScramCredentialsResult", user=name,
                error_code=err.NONE if known else err.kafka_code(Reason.USER_NOT_FOUND),
                error_message=None if known else f"user {name!r} does not exist",
                credential_infos=(codec.nested(module, "CredentialInfo",
                                               mechanism=SCRAM_SHA_512,
                                               iterations=known.iterations),)
                if known else ()))
        return codec.make(module.DescribeUserScramCredentialsResponse, error_code=err.NONE,
                          error_message=None, results=tuple(results))

    async def alter(self, version: int, body: Any, access: Access) -> Any:
        module = codec.response_module(51, version)
        results = []
        changes = [(d.name, d.mechanism, None) for d in body.deletions] + \
            [(u.name, u.mechanism, u) for u in body.upsertions]
        for name, mechanism, upsert in changes:
            code, message = err.NONE, None
            try:
                op.alter_cluster(access)
                _check(name, mechanism)
                if upsert is None:
                    if name not in self.cluster.image.security.users:
                        raise BrokerError(Reason.USER_NOT_FOUND,
                                          f"user {name!r} does not exist")
                    await self.cluster.propose(DeleteUser(name))
                else:
                    if not scram.MIN_ITERATIONS <= upsert.iterations <= scram.MAX_ITERATIONS:
                        raise BrokerError(Reason.INVALID_REQUEST, "iterations must be "
                                          f"between {scram.MIN_ITERATIONS} and "
                                          f"{scram.MAX_ITERATIONS}")
                    salt = bytes(upsert.salt)
                    if len(salt) < scram.MIN_SALT_BYTES or \
                            len(upsert.salted_password) != scram.KEY_BYTES:
                        raise BrokerError(Reason.INVALID_REQUEST,
                                          f"the salt needs {scram.MIN_SALT_BYTES} bytes or "
                                          f"more and the salted password {scram.KEY_BYTES}")
                    c = scram.credential_of_salted(bytes(upsert.salted_password), salt,
                                                   upsert.iterations)
                    await self.cluster.propose(UpsertUser(name, scram.MECHANISM, c.salt,
                                                          c.iterations, c.stored_key,
                                                          c.server_key))
            except Exception as exc:
                code, message = err.error_of(exc, "AlterUserScramCredentials")
            results.append(codec.nested(module, "AlterUserScramCredentialsResult", user=name,
                                        error_code=code, error_message=message))
        return codec.make(module.AlterUserScramCredentialsResponse, results=tuple(results))
