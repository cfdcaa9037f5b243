"""The pure core of sync-core: canonical model, mapping, rules and decisions. No I/O in here."""
