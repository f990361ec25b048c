"""Every golden fixture's expected events validate against the canonical JSON Schema.

tests/fixtures/<provider>/<case>/expected.json holds the exact events a provider's parse
must produce (the C test test_fixtures checks that); this test checks that those events
are themselves valid mailhook.event.v1 objects, so the golden files cannot drift from the
schema that consumers rely on. It needs no running services.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "schema" / "mailhook.event.v1.json"
FIXTURES = ROOT / "tests" / "fixtures"

EXPECTED = sorted(FIXTURES.glob("*/*/expected.json"))


def _case_id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.parent.name}"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_fixtures_exist() -> None:
    assert EXPECTED, f"no expected.json under {FIXTURES}"


@pytest.mark.parametrize("path", EXPECTED, ids=_case_id)
def test_expected_events_validate(path: Path, validator: jsonschema.Draft202012Validator) -> None:
    events = json.loads(path.read_text())
    assert isinstance(events, list), f"{path}: expected.json must hold a JSON array"
    for i, event in enumerate(events):
        errors = sorted(validator.iter_errors(event), key=lambda e: list(e.absolute_path))
        assert not errors, f"{_case_id(path)} event {i}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors
        )
        assert event["provider"] == path.parent.parent.name


def test_schema_rejects_what_it_should(validator: jsonschema.Draft202012Validator) -> None:
    """A few negative checks, so a schema that accepts everything fails here."""
    good = {
        "schema": "mailhook.event.v1",
        "event_id": "evt_1",
        "type": "email.bounced",
        "provider": "ivymail",
        "source": "ivymail",
        "tenant": "t",
        "received_at": "2026-01-01T00:00:00.000Z",
        "bounce": {"class": "hard", "category": "invalid_recipient", "enhanced_code": "5.1.1"},
    }
    assert validator.is_valid(good)
    bad_cases = [
        {**good, "type": "email.exploded"},
        {**good, "unknown_field": 1},
        {**good, "received_at": "2026-01-01T00:00:00Z"},
        {**good, "recipient": "User@Example.com"},
        {**good, "bounce": {"class": "permanent", "category": "invalid_recipient"}},
        {**good, "bounce": {"class": "hard", "category": "invalid_recipient", "extra": 1}},
        {**good, "bounce": {"class": "hard", "category": "invalid_recipient", "enhanced_code": "5.1"}},
        {**good, "click": {}},
        {k: v for k, v in good.items() if k != "tenant"},
    ]
    for bad in bad_cases:
        assert not validator.is_valid(bad), bad
