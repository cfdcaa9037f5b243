"""Mapping between Graph / ERP JSON and the canonical model (R01–R04)."""
