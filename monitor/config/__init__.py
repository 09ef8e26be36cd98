"""monitor.config: see :mod:`monitor.config.core`; this package re-exports its public names."""

from monitor.config.core import (
    AccountConfig,
    Config,
    HostPort,
    VenueConfig,
    check_local_resources,
    load_config,
    parse_config,
    parse_host_port,
    resource_error,
)

__all__ = [
    "AccountConfig",
    "Config",
    "HostPort",
    "VenueConfig",
    "check_local_resources",
    "load_config",
    "parse_config",
    "parse_host_port",
    "resource_error",
]
