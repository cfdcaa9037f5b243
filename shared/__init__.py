"""Common package of the sync services: settings, messages, bus, telemetry, database, logs."""
