"""Who is calling and what they may do, with no protocol: the front ends find the caller
and set its Access for the request; domain rules (operations.py) and the servicers ask it."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from odradek.broker.auth.authorizer import ANONYMOUS, IMPLIED_BY, Authorizer
from odradek.broker.errors import BrokerError, Reason
from odradek.broker.metadata.security import CLUSTER_NAME

DENIED_REASONS = {"topic": Reason.TOPIC_AUTHORIZATION_FAILED,
                  "group": Reason.GROUP_AUTHORIZATION_FAILED,
                  "cluster": Reason.CLUSTER_AUTHORIZATION_FAILED,
                  "producer_name": Reason.PRODUCER_NAME_AUTHORIZATION_FAILED}


def permission_denied(principal: str, resource_type: str, name: str,
                      operation: str) -> BrokerError:
    what = "the cluster" if resource_type == "cluster" else f"{resource_type} {name!r}"
    return BrokerError(
        DENIED_REASONS[resource_type], f"{principal} is not allowed to {operation} on {what}",
        {"principal": principal, "resource_type": resource_type, "resource_name": name,
         "operation": operation})


@dataclass(frozen=True)
class Access:
    """Who is calling, from where, and the authorizer that decides for them."""

    principal: str
    host: str
    authorizer: Authorizer

    def allowed(self, resource_type: str, name: str, operation: str) -> bool:
        return self.authorizer.allowed(self.principal, self.host, resource_type, name,
                                       operation)

    def require(self, resource_type: str, name: str, operation: str) -> None:
        if not self.allowed(resource_type, name, operation):
            raise permission_denied(self.principal, resource_type, name, operation)

    def require_any(self, *checks: tuple[str, str, str]) -> None:
        """One of the (resource type, name, operation) must be allowed; the denial names
        the first."""
        if not any(self.allowed(*check) for check in checks):
            raise permission_denied(self.principal, *checks[0])

    def require_cluster(self, operation: str) -> None:
        self.require("cluster", CLUSTER_NAME, operation)

    def require_super_user(self) -> None:
        if self.authorizer.enabled and not self.authorizer.is_super_user(self.principal):
            raise BrokerError(Reason.CLUSTER_AUTHORIZATION_FAILED,
                f"{self.principal} may not call broker-internal services",
                {"principal": self.principal})

    def may_describe_topic(self, name: str) -> bool:
        return self.allowed("topic", name, "describe")

    def require_some_topic_describable(self) -> None:
        """For listing topics: an empty list would read as "no topics" to a caller who
        forgot to log in. The denial says only what the caller may do, nothing of the
        topics."""
        if not any(self.authorizer.allowed_for_some(self.principal, self.host, "topic", op)
                   for op in ("describe", *IMPLIED_BY["describe"])):
            raise BrokerError(Reason.TOPIC_AUTHORIZATION_FAILED,
                              f"{self.principal} may not describe any topic",
                              {"principal": self.principal, "resource_type": "topic",
                               "operation": "describe"})


_OPEN = Access(ANONYMOUS, "", Authorizer((), enabled=False))
_current: contextvars.ContextVar[Access] = contextvars.ContextVar("odradek_access",
                                                                  default=_OPEN)


def current_access() -> Access:
    """The caller of the request being served (everything allowed outside a front end,
    e.g. in-process tests that call servicers directly)."""
    return _current.get()


def set_current_access(access: Access) -> None:
    """For the front end, once it knows who is calling (in the request's context)."""
    _current.set(access)


# A rule runs before the request is served, with the request as the front end decoded it.
# PUBLIC requests are not checked at all; INTER_BROKER ones need a super user (which the
# brokers are).
Rule = Callable[[Any, Access], None]
PUBLIC = "public"
INTER_BROKER = "inter-broker"
