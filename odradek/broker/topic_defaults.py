"""The defaults a topic's configs fall back on: the cluster-wide ones in the metadata
(AlterClusterConfigs, changed at run time) over this broker's --config flags over the
built-in ones."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from odradek.storage import ConfigError, LogConfig

log = logging.getLogger("odradek.broker")


def effective_defaults(static: LogConfig, dynamic: Mapping[str, str]) -> LogConfig:
    """A cluster-wide set that this broker cannot take over its own flags (the controller
    checked it over its own) is logged and left out, rather than stopping the reconcile
    of every partition."""
    if not dynamic:
        return static
    try:
        return LogConfig.from_dict(dynamic, base=static)
    except ConfigError as exc:
        log.error("the cluster-wide topic defaults %s do not go with this broker's "
                  "--config defaults, which stay in force: %s", dict(dynamic), exc)
        return static
