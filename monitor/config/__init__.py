"""monitor.config: the daemon's configuration (see :mod:`monitor.config.core`).

``schema`` is the file's shape as msgspec Structs, ``decode`` checks a parsed file against it in
one call and words msgspec's errors in the file's terms, ``secrets`` reads what the file names,
``core`` checks the rest and builds the frozen config, ``resources`` checks what the sinks will
open. This package re-exports the public names.
"""

from monitor.config.core import (
    AccountConfig,
    Config,
    HostPort,
    VenueConfig,
    load_config,
    parse_config,
    parse_host_port,
)
from monitor.config.resources import check_local_resources, resource_error

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
