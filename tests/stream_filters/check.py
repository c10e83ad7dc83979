"""The stream filters of template.yaml (each DynamoDB event source's FilterCriteria), checked
with moto's event-pattern engine (moto.events, the syntax Lambda's event filtering shares with
EventBridge) against the records each function must get and those it must not.

moto cannot run event source mappings, so the contract suite pumps the table's stream into the
functions unfiltered (tests/src/lib.rs); a pattern that drops a record the function needs
would only show on AWS. Run by tests/run with the virtualenv's Python:

    .venv/bin/python tests/stream_filters/check.py
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from cfnlint.decode import cfn_yaml
from moto.events.models import EventPattern

REPO = Path(__file__).resolve().parents[2]
TTL = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


def stream_filters() -> dict[str, list[EventPattern]]:
    """function name (its Handler) -> the patterns of its DynamoDB event sources."""
    template = cfn_yaml.load(str(REPO / "template.yaml"))
    out: dict[str, list[EventPattern]] = {}
    for resource in template["Resources"].values():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        for source in props.get("Events", {}).values():
            if source.get("Type") != "DynamoDB":
                continue
            name = str(props["Handler"])
            filters = source["Properties"].get("FilterCriteria", {}).get("Filters", [])
            out.setdefault(name, []).extend(EventPattern.load(str(f["Pattern"])) for f in filters)
    return out


SHARE_PK = "SHARE#q3Zt0d8YwV1mKb6Xr2NcAa"


def record(event_name: str, sk: str, user_identity: dict | None = None, pk: str = SHARE_PK) -> dict:
    """A stream record as Lambda hands it over, keys only (what the patterns look at); the keys
    are those shared/src/aws/dynamo*.rs writes."""
    r = {
        "eventID": "1",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-central-2",
        "dynamodb": {"Keys": {"pk": {"S": pk}, "sk": {"S": sk}}},
    }
    if user_identity is not None:
        r["userIdentity"] = copy.deepcopy(user_identity)
    return r


def event_file_records(name: str) -> list[dict]:
    return json.loads((REPO / "events" / f"{name}.json").read_text())["Records"]


def cases() -> dict[str, list[tuple[str, dict, bool]]]:
    """function -> (what, record, whether it must reach the function)."""
    cleanup = event_file_records("cleanup")
    fanout = event_file_records("webhook-fanout")
    return {
        "cleanup": [
            ("TTL removes a share (events/cleanup.json)", cleanup[0], True),
            ("TTL removes an event item (events/cleanup.json)", cleanup[1], False),
            ("the application deletes a share item", record("REMOVE", "SHARE"), False),
            ("a share changes", record("MODIFY", "SHARE"), False),
            ("a share is created", record("INSERT", "SHARE"), False),
        ],
        "webhook-fanout": [
            *[(f"events/webhook-fanout.json record {i + 1}", r, True) for i, r in enumerate(fanout)],
            ("an event item is written", record("INSERT", "EVENT#001795436100000000000#000#evt_a"), True),
            ("a share changes (its events are items of their own)", record("MODIFY", "SHARE"), False),
            ("a share is created (its events are items of their own)", record("INSERT", "SHARE"), False),
            ("an SMS counter changes", record("MODIFY", "SMS", pk="SMS#prc_a#2026-11-24"), False),
            ("an idempotency key is written", record("INSERT", "IDEMP", pk="IDEMP#prc_a#key-1"), False),
            ("a webhook's health changes", record("MODIFY", "WHHEALTH#whk_a", pk="PRACTICE#prc_a"), False),
            ("TTL removes an event item", record("REMOVE", "EVENT#001795436100000000000#000#evt_a", TTL), False),
            ("TTL removes a share", record("REMOVE", "SHARE", TTL), False),
        ],
    }


def main() -> int:
    filters = stream_filters()
    expected = cases()
    failures = []
    if set(filters) != set(expected):
        failures.append(f"functions with stream sources: template {sorted(filters)}, checked {sorted(expected)}")
    for name, patterns in filters.items():
        if not patterns:
            failures.append(f"{name}: its stream source has no FilterCriteria")
        for what, rec, must in expected.get(name, []):
            passes = any(p.matches_event(rec) for p in patterns)
            if passes != must:
                failures.append(f"{name}: {what}: {'passes' if passes else 'is dropped'}, should {'pass' if must else 'be dropped'}")
    for failure in failures:
        print(f"stream filters: {failure}", file=sys.stderr)
    if not failures:
        count = sum(len(c) for c in expected.values())
        print(f"stream filters: {count} records against {sum(len(p) for p in filters.values())} patterns, all as intended")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
