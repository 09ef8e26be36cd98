"""The monitor: state store, engine, sinks, metrics, config, CLI and daemon lifecycle."""
