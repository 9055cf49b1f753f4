#!/usr/bin/env python3
"""Validates server/openapi.json against the OpenAPI 3 schema (openapi-spec-validator).
Exit 77 (ctest: skipped) when the validator is not installed."""
import json
import sys

try:
    from openapi_spec_validator import validate
except ImportError:
    print("SKIPPED: openapi-spec-validator is not installed")
    sys.exit(77)
with open(sys.argv[1]) as f:
    validate(json.load(f))
print("PASSED: valid OpenAPI 3")
