"""Alert sinks behind one small protocol: console, JSONL file, Kafka, MQTT."""
