"""What the schemathesis tests check, and how much they generate: bounded and reproducible."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from schemathesis import checks

# The answers must be no 5xx, documented statuses, declared content types and bodies as documented;
# a protected operation must refuse a request without its credentials (`ignored_auth`). Left out on
# purpose: positive_data_acceptance (schema-valid is not business-valid: an unknown code is a 404 or
# 422) and the Allow-header and unsupported-method checks (framework behaviour, not ours).
CHECKS: list[Any] = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.ignored_auth,
]

# A fixed number of examples per operation, derandomized: the same requests on every run.
BOUNDED = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
