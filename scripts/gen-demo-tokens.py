#!/usr/bin/env python3
"""Generate config/demo-tokens.json, the token list of the tenant that `patrol demo` serves.

The file is shaped exactly like the response of the ISC list endpoint
(GET /v3/personal-access-tokens and its equivalents): a bare JSON array of token objects.
It describes one realistic tenant of 300 tokens held by 40 owners, 13 service identities
and 27 people, none with more than 10 tokens (the per-user limit of ISC). The mix covers
what an audit has to tell apart. There are tokens in daily use, tokens unused for 60, 90
and 200+ days, and never-used tokens both old and new. There are managed Workflow tokens
(some stale), tokens expiring within 14 days, expired tokens, and tokens that never
expire, some with sp:scopes:all. Two are break-glass tokens, and one is the auditor's own
token (id aaaa0000000000000000000000000001, named patrol-auditor).

Every instant is placed relative to ANCHOR, 2026-12-01T00:00:00Z. The JSON carries no
anchor because the list response is a bare array, so config/demo.toml names it in its
header instead. The demo shifts each instant by (now - ANCHOR) when it serves the file,
so the ages of the tokens stay the same whenever the demo runs.

Instants are written as YYYY-MM-DDTHH:MM:SS.sssZ. A few tokens use six fraction digits
or none, because the real service varies. Some never-used tokens carry `"lastUsed": null`
and others leave the key out, as the API allows both.

The expiry dates follow a model of the token's history. The demo assumes it:
- A token created before 2025-07-15, when ISC introduced expirationDate, has none, so it
  never expires and has no userAwareTokenNeverExpires key.
- A token created later expires six months after creation (the documented default) or
  at an earlier date its owner chose.
- A token created on or after 2026-02-19 may instead have been created with the v2025 API,
  which allows a later expiry or none at all. Such a token carries
  userAwareTokenNeverExpires, which is true exactly when expirationDate is null.
- Managed Workflow tokens have no expirationDate.

The output is deterministic: SEED drives a private random.Random, so the same script
writes the same bytes. Before it writes the file, the script validates every token and
checks that each id config/demo.toml names belongs to a token. It prints counts per
category at the anchor. The categories overlap: an expired token can
also be stale.

Usage (Python 3 standard library only):
    scripts/gen-demo-tokens.py              write config/demo-tokens.json, print the summary
    scripts/gen-demo-tokens.py --check      exit 1 if config/demo-tokens.json differs from
                                            what the script generates
    scripts/gen-demo-tokens.py --output F   write F instead
"""

from __future__ import annotations

import argparse
import calendar
import json
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ANCHOR = datetime(2026, 12, 1, tzinfo=timezone.utc)
SEED = 20261201

AUDITOR_TOKEN_ID = "aaaa0000000000000000000000000001"
AUDITOR_TOKEN_NAME = "patrol-auditor"
# Ids that config/demo.toml names in its exemptions. They are fixed so that a change to
# the random draws cannot orphan an exemption, and check_policy_references() checks them.
SOX_EXPORT_TOKEN_ID = "6f1d0c9e2b8a4f57a3e1d4c7b9f20e85"
FIXED_OWNER_IDS = {"svc-iiq-migration": "2c9180875f1a3e9b015f2c4d8e7a0b13"}
TOKEN_COUNT = 300
TOKENS_PER_OWNER_LIMIT = 10

EXPIRY_INTRODUCED = datetime(2025, 7, 15, tzinfo=timezone.utc)
NEVER_EXPIRE_INTRODUCED = datetime(2026, 2, 19, tzinfo=timezone.utc)
# Creation date of the oldest token in the tenant.
OLDEST_CREATED = datetime(2024, 1, 8, tzinfo=timezone.utc)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
DEFAULT_OUTPUT = CONFIG_DIR / "demo-tokens.json"
DEMO_POLICY = CONFIG_DIR / "demo.toml"

# Scope sets by purpose. `sp:scopes:all` grants every right of the owner's user level, and
# the other sets are the least privilege that such an integration would request.
SCOPES = {
    "sync": ["idn:identity:read", "idn:accounts:read", "sp:search:read"],
    "provisioning": ["idn:identity:read", "idn:accounts:read", "idn:sources:manage"],
    "reporting": ["sp:search:read", "sp:report:read"],
    "config": ["sp:config:read", "sp:config:manage", "idn:transform:manage"],
    "config-read": ["sp:config:read", "idn:transform:read"],
    "certs": ["idn:certification:read", "idn:campaign:read"],
    "roles": ["idn:role-unchecked:manage", "idn:access-profile:manage", "idn:entitlement:read"],
    "workflows": ["sp:workflow:manage", "sp:workflow-execute:external"],
    "sources": ["idn:sources:read", "idn:task-management:read"],
    "identity": ["idn:identity:read", "idn:identity-profile:read"],
    "pat-audit": ["sp:all-personal-access-tokens:manage"],
    "pat-read": ["sp:all-personal-access-tokens:read"],
    "default": ["sp:scopes:default"],
    "admin": ["sp:scopes:all"],
}

# Archetypes: how a token was used, which sets its instants.
ACTIVE = "active"  # used within the last week
RECENT = "recent"  # used 7 to 50 days ago
STALE_60 = "stale-60"  # unused for 62 to 86 days
STALE_90 = "stale-90"  # unused for 93 to 195 days
STALE_200 = "stale-200"  # unused for 200 to 620 days
NEVER_OLD = "never-used-old"  # never used, created 31 to 500 days ago
NEVER_NEW = "never-used-new"  # never used, created within the last 29 days
EXPIRING = "expiring"  # expires within the next 14 days
EXPIRED = "expired"  # expired within the last 200 days

# Weights of the archetypes for tokens that the catalog does not pin, by kind of owner.
WEIGHTS = {
    "service": {ACTIVE: 70, RECENT: 14, STALE_60: 5, STALE_90: 3, STALE_200: 1,
                NEVER_OLD: 2, NEVER_NEW: 2, EXPIRING: 2, EXPIRED: 1},
    "engineer": {ACTIVE: 52, RECENT: 20, STALE_60: 7, STALE_90: 5, STALE_200: 2,
                 NEVER_OLD: 3, NEVER_NEW: 5, EXPIRING: 3, EXPIRED: 3},
    "staff": {ACTIVE: 42, RECENT: 20, STALE_60: 8, STALE_90: 7, STALE_200: 3,
              NEVER_OLD: 6, NEVER_NEW: 4, EXPIRING: 4, EXPIRED: 6},
    "contractor": {ACTIVE: 35, RECENT: 15, STALE_60: 10, STALE_90: 10, STALE_200: 5,
                   NEVER_OLD: 8, NEVER_NEW: 5, EXPIRING: 5, EXPIRED: 7},
    "departed": {STALE_90: 30, STALE_200: 45, NEVER_OLD: 15, EXPIRED: 10},
}


# Integration tokens of the service identities: (name, purpose, archetype or None to draw).
# The first entry of each list is the live integration.
SERVICE_CATALOG = {
    "svc-servicenow": [
        ("servicenow-sync", "sync", ACTIVE),
        ("servicenow-catalog-requests", "provisioning", ACTIVE),
        ("servicenow-cmdb-import", "sync", None),
        ("servicenow-sync-2025", "sync", STALE_200),
        ("servicenow-access-review", "certs", None),
        ("servicenow-incident-bridge", "reporting", None),
        ("servicenow-uat", "sync", None),
        ("servicenow-dev", "sync", NEVER_OLD),
        ("servicenow-sync-backup", "sync", None),
        ("snow-ticket-closer", "provisioning", None),
    ],
    "svc-terraform": [
        ("terraform-ci", "config", ACTIVE),
        ("terraform-ci-prod", "config", ACTIVE),
        ("terraform-ci-sandbox", "config", None),
        ("terraform-ci-v1", "config", EXPIRED),
        ("tf-sources-module", "sources", None),
        ("tf-transforms-module", "config", None),
        ("terraform-ci-staging", "config", None),
        # terraform-drift-check and terraform-plan, on either side of 90 days unused, are
        # pinned in PINNED_TOKENS.
    ],
    "svc-powerbi": [
        ("powerbi-export", "reporting", ACTIVE),
        ("powerbi-refresh", "reporting", ACTIVE),
        ("powerbi-identity-dashboard", "reporting", None),
        ("powerbi-cert-dashboard", "certs", None),
        ("powerbi-export-test", "reporting", NEVER_OLD),
        ("powerbi-gateway", "reporting", None),
        ("powerbi-export-v1", "reporting", EXPIRED),
    ],
    "svc-okta": [
        ("okta-provisioning", "provisioning", ACTIVE),
        ("okta-group-sync", "sync", ACTIVE),
        ("okta-provisioning-sandbox", "provisioning", None),
        ("okta-lifecycle-hooks", "workflows", None),
        ("okta-provisioning-old", "provisioning", STALE_200),
        ("okta-scim-bridge", "provisioning", None),
    ],
    "svc-jenkins": [
        ("jenkins-deploy", "config", ACTIVE),
        ("jenkins-nightly-tests", "config-read", ACTIVE),
        ("jenkins-sp-config-promote", "config", None),
        ("jenkins-smoke-tests", "config-read", None),
        ("jenkins-deploy-legacy", "admin", STALE_200),
        ("jenkins-rule-deploy", "config", None),
    ],
    "svc-splunk": [
        ("splunk-audit-forwarder", "reporting", ACTIVE),
        ("splunk-search-export", "reporting", None),
        ("splunk-hec-bridge", "reporting", None),
        ("splunk-soar-playbook", "provisioning", None),
        ("splunk-audit-forwarder-dev", "reporting", NEVER_OLD),
    ],
    "svc-workday": [
        ("workday-hr-feed", "identity", ACTIVE),
        ("workday-termination-check", "identity", ACTIVE),
        ("workday-mover-sync", "identity", None),
        ("workday-hr-feed-test", "identity", None),
        ("workday-prehire-import", "identity", None),
    ],
    "svc-reporting": [
        ("access-review-report", "certs", ACTIVE),
        ("monthly-entitlement-export", "reporting", RECENT),
        ("orphan-account-report", "reporting", None),
        ("sod-violations-report", "reporting", None),
        ("weekly-identity-metrics", "reporting", None),
        ("audit-evidence-pull", "reporting", None),
        ("license-usage-report", "reporting", None),
        # sox-annual-evidence-export is pinned in PINNED_TOKENS.
    ],
    "svc-github-actions": [
        ("github-actions-sp-config", "config", ACTIVE),
        ("github-actions-transforms", "config", None),
        ("github-actions-rules", "config", None),
        ("github-actions-iac", "config", None),
        ("gha-sandbox-refresh", "config", None),
        ("github-actions-forms", "workflows", None),
    ],
    "svc-snowflake": [
        ("snowflake-identity-loader", "sync", ACTIVE),
        ("snowflake-access-history", "reporting", None),
        ("snowflake-loader-dev", "sync", None),
        ("dbt-identity-models", "sync", None),
    ],
    # Tooling of the finished IdentityIQ migration. An expired exemption covers this owner.
    "svc-iiq-migration": [
        ("iiq-migration-roles", "roles", STALE_90),
        ("iiq-migration-sources", "sources", STALE_200),
        ("iiq-cutover-validation", "sync", STALE_60),
        ("iiq-entitlement-compare", "roles", NEVER_OLD),
        ("iiq-migration-test", "admin", EXPIRED),
    ],
    "svc-patrol": [
        # patrol-auditor and its expired predecessor are pinned in PINNED_TOKENS.
    ],
    "svc-breakglass": [
        # break-glass-admin and break-glass-secondary are pinned in PINNED_TOKENS.
    ],
}

# Names of personal tokens: (name, purpose). Owners draw from the pool of their kind.
ENGINEER_TOKENS = [
    ("sailpoint-cli", "admin"), ("vscode-extension", "admin"), ("postman", "admin"),
    ("python-sdk-scripts", "sync"), ("powershell-sdk", "admin"), ("transform-testing", "config"),
    ("sandbox-admin", "admin"), ("rule-dev", "config"), ("jupyter-role-mining", "roles"),
    ("sp-config-backup", "config-read"), ("source-aggregation-trigger", "sources"),
    ("cert-campaign-automation", "certs"), ("identity-profile-tuning", "identity"),
    ("access-profile-bulk-load", "roles"), ("pat-inventory-script", "pat-read"),
]
STAFF_TOKENS = [
    ("test", "admin"), ("Postman", "admin"), ("my-token", "default"),
    ("access-request-bot", "provisioning"), ("report-script", "reporting"),
    ("temp-delete-me", "admin"), ("hackathon-token", "admin"), ("excel-export", "reporting"),
    ("local-dev", "sync"), ("xsoar-playbook", "provisioning"), ("sentinel-ingest", "reporting"),
    ("teams-notifications", "workflows"), ("slack-approvals", "workflows"),
    ("jira-ticketing", "provisioning"), ("pagerduty-alerts", "reporting"),
    ("tableau-dashboard", "reporting"), ("manager-access-review", "certs"),
    ("entitlement-lookup", "sync"), ("role-owner-report", "roles"), ("api-testing", "default"),
]
CONTRACTOR_TOKENS = [
    ("sailpoint-services-onboarding", "admin"), ("ps-migration", "admin"),
    ("consultant-cli", "admin"), ("connector-troubleshooting", "sources"),
    ("role-model-import", "roles"), ("uat-testing", "admin"), ("handover-scripts", "sync"),
    ("data-quality-checks", "identity"),
]
WORKFLOW_NAMES = [
    "Workflow: Disable inactive identities", "Workflow: Notify manager of new hire",
    "Workflow: Revoke access on termination", "Workflow: Mover access review",
    "Workflow: Certification reminder", "Workflow: Send Slack alert for SoD violation",
    "Workflow: Sync Okta groups", "Workflow: Weekly orphan account report",
    "Workflow: Reset MFA on rehire", "Workflow: Leaver - disable AD account",
    "Workflow: Create ServiceNow ticket for failed provisioning",
    "Workflow: Escalate pending access requests", "Workflow: Contractor end-date warning",
    "Workflow: Birthright access for interns",
]

# (name, kind, token count). Kinds: service, engineer (IAM team), staff, contractor,
# departed (left the company, identity not yet cleaned up).
OWNERS = [
    ("svc-patrol", "service", 2),
    ("svc-servicenow", "service", 10),
    ("svc-terraform", "service", 9),
    ("svc-powerbi", "service", 7),
    ("svc-okta", "service", 6),
    ("svc-jenkins", "service", 6),
    ("svc-splunk", "service", 5),
    ("svc-workday", "service", 5),
    ("svc-reporting", "service", 8),
    ("svc-github-actions", "service", 6),
    ("svc-snowflake", "service", 4),
    ("svc-iiq-migration", "service", 5),
    ("svc-breakglass", "service", 2),
    ("Priya Raman", "engineer", 10),
    ("Lukas Hoffmann", "engineer", 10),
    ("Emily Carter", "engineer", 10),
    ("Kenji Watanabe", "engineer", 10),
    ("Sofia Alvarez", "engineer", 10),
    ("Daniel Okafor", "engineer", 10),
    ("Hannah Lindqvist", "engineer", 9),
    ("Marco Bianchi", "engineer", 9),
    ("Aisha Khan", "staff", 9),
    ("Tom Becker", "staff", 8),
    ("Olivia Brown", "staff", 10),
    ("Mateo Rossi", "staff", 8),
    ("Grace Liu", "staff", 9),
    ("Jonas Nilsson", "staff", 8),
    ("Fatima Haddad", "staff", 8),
    ("Ryan O'Connor", "staff", 8),
    ("Chloe Dubois", "staff", 7),
    ("Arjun Mehta", "staff", 10),
    ("Nina Petrova", "staff", 8),
    ("Samuel Adeyemi", "staff", 8),
    ("Peter Walsh", "departed", 6),
    ("Julia Novak", "departed", 6),
    ("Ahmed Saleh", "departed", 5),
    ("Megan Clarke", "departed", 5),
    ("Carlos Mendes", "contractor", 8),
    ("Ingrid Solberg", "contractor", 8),
    ("Vikram Patel", "contractor", 8),
]

# Managed Workflow tokens per engineer or departed owner (they count toward the limit).
WORKFLOW_TOKENS = {
    "Priya Raman": 3, "Lukas Hoffmann": 2, "Emily Carter": 2, "Kenji Watanabe": 1,
    "Sofia Alvarez": 2, "Daniel Okafor": 1, "Hannah Lindqvist": 1, "Peter Walsh": 2,
}


@dataclass
class Pin:
    """A token with fixed fields: one that config/demo.toml names, or an edge case that a
    change to the random draws must not move."""

    owner: str
    name: str
    scope: list
    created: datetime
    last_used: datetime | None
    expiration: datetime | None
    never_expires_flag: bool | None = None
    validity: int = 43200
    token_id: str | None = None


def days_before(days: float, hour: int = 0, minute: int = 0, second: int = 0,
                millisecond: int = 0) -> datetime:
    """Return the instant at the given UTC time of day, `days` whole days before the anchor."""
    day = ANCHOR - timedelta(days=days)
    return day.replace(hour=hour, minute=minute, second=second, microsecond=millisecond * 1000)


def add_months(instant: datetime, months: int) -> datetime:
    """Add calendar months, keeping the time of day and clamping the day to the month's end."""
    month_index = instant.month - 1 + months
    year = instant.year + month_index // 12
    month = month_index % 12 + 1
    day = min(instant.day, calendar.monthrange(year, month)[1])
    return instant.replace(year=year, month=month, day=day)


PINNED_TOKENS = [
    # The auditor's own token: it lists the tenant every night at 03:15 UTC.
    Pin("svc-patrol", AUDITOR_TOKEN_NAME, SCOPES["pat-audit"],
        created=days_before(41, 10, 12, 33, 418), last_used=days_before(1, 3, 15, 4, 227),
        expiration=add_months(days_before(41, 10, 12, 33, 418), 6),
        token_id=AUDITOR_TOKEN_ID),
    # The auditor's previous token: used every night until it expired after six months.
    Pin("svc-patrol", "patrol-auditor-2026-04", SCOPES["pat-audit"],
        created=datetime(2026, 4, 20, 9, 58, 2, 871000, tzinfo=timezone.utc),
        last_used=datetime(2026, 10, 20, 3, 15, 3, 96000, tzinfo=timezone.utc),
        expiration=datetime(2026, 10, 20, 9, 58, 2, 871000, tzinfo=timezone.utc)),
    # Emergency access: created before expiry dates existed, last used in a drill.
    Pin("svc-breakglass", "break-glass-admin", SCOPES["admin"],
        created=datetime(2025, 3, 4, 16, 2, 51, 77000, tzinfo=timezone.utc),
        last_used=days_before(231, 14, 30, 12, 904), expiration=None),
    # The second emergency token, created never-expiring with the v2025 API and never used.
    Pin("svc-breakglass", "break-glass-secondary", SCOPES["admin"],
        created=datetime(2026, 3, 10, 9, 41, 7, 650000, tzinfo=timezone.utc),
        last_used=None, expiration=None, never_expires_flag=True),
    # Runs once a year after the fiscal year-end, so an exemption with an end date keeps it.
    Pin("svc-reporting", "sox-annual-evidence-export", SCOPES["reporting"],
        created=datetime(2026, 3, 2, 13, 20, 45, 310000, tzinfo=timezone.utc),
        last_used=datetime(2026, 3, 31, 22, 5, 9, 482000, tzinfo=timezone.utc),
        expiration=datetime(2027, 4, 2, 13, 20, 45, 310000, tzinfo=timezone.utc),
        never_expires_flag=False, token_id=SOX_EXPORT_TOKEN_ID),
    # lastUsed 91 days ago: with the one-day lag and a 12-hour access token the token may
    # have been in use 89.5 days ago, so it is not yet unused for 90 days.
    Pin("svc-terraform", "terraform-drift-check", SCOPES["config-read"],
        created=datetime(2026, 6, 22, 8, 0, 14, 5000, tzinfo=timezone.utc),
        last_used=days_before(91), expiration=datetime(2026, 12, 22, 8, 0, 14, 5000,
                                                       tzinfo=timezone.utc)),
    # lastUsed 92 days ago with 1-hour access tokens: unused for more than 90 days.
    Pin("svc-terraform", "terraform-plan", SCOPES["config-read"],
        created=datetime(2026, 6, 22, 8, 3, 40, 912000, tzinfo=timezone.utc),
        last_used=days_before(92), expiration=datetime(2026, 12, 22, 8, 3, 40, 912000,
                                                       tzinfo=timezone.utc),
        validity=3600),
    # A vendor debugging session: expired two days ago, created six days ago, never used.
    Pin("Fatima Haddad", "temp-vendor-debug", SCOPES["sources"],
        created=days_before(6, 15, 47, 2, 339), last_used=None,
        expiration=days_before(2, 15, 47, 2, 339)),
    # A penetration test token with a short expiry chosen by its owner.
    Pin("Samuel Adeyemi", "pentest-2026-q4", SCOPES["admin"],
        created=days_before(20, 9, 5, 55, 120), last_used=days_before(3, 11, 26, 40, 18),
        expiration=days_before(-9, 9, 5, 55, 120), validity=900),
]


class Generator:
    """Draws the tenant from a seeded random.Random, one owner at a time."""

    def __init__(self, seed: int):
        self.random = random.Random(seed)
        self.token_ids = {AUDITOR_TOKEN_ID, SOX_EXPORT_TOKEN_ID}
        self.owner_ids = set(FIXED_OWNER_IDS.values())

    def hex_id(self, prefix: str = "") -> str:
        return prefix + format(self.random.getrandbits(128), "032x")[len(prefix):]

    def new_token_id(self) -> str:
        while True:
            token_id = self.hex_id()
            if token_id not in self.token_ids:
                self.token_ids.add(token_id)
                return token_id

    def new_owner_id(self) -> str:
        # Most identity ids in ISC examples start with 2c918. Some ids here are plain random
        # hex, so that nothing comes to depend on the prefix.
        prefix = "2c918" if self.random.random() < 0.7 else ""
        while True:
            owner_id = self.hex_id(prefix)
            if owner_id not in self.owner_ids:
                self.owner_ids.add(owner_id)
                return owner_id

    def time_of_day(self, instant: datetime, scheduled_hour: int | None) -> datetime:
        """Return the instant at a drawn time of day: in the given hour for a nightly job,
        or in office hours for a person."""
        if scheduled_hour is not None:
            hour = scheduled_hour
        else:
            hour = self.random.randrange(7, 18)
        return instant.replace(hour=hour, minute=self.random.randrange(60),
                               second=self.random.randrange(60),
                               microsecond=self.random.randrange(1_000_000))

    def day(self, low: int, high: int, scheduled_hour: int | None = None) -> datetime:
        """Return an instant on a whole day between `low` and `high` days before the anchor."""
        days = self.random.randint(max(low, 1), max(high, 1))
        return self.time_of_day(days_before(days), scheduled_hour)

    def created_for(self, last_used_days: int, span: int, legacy_share: float) -> datetime:
        """Draw a creation instant before lastUsed: recent, or a legacy token from 2024-2025."""
        if self.random.random() < legacy_share:
            low = (ANCHOR - EXPIRY_INTRODUCED).days + 1
            high = (ANCHOR - OLDEST_CREATED).days
            return self.day(max(low, last_used_days + 1), high)
        return self.day(last_used_days + 1, last_used_days + span)

    def expiry_for(self, created: datetime) -> tuple:
        """Return (expirationDate, userAwareTokenNeverExpires) by the model in the header."""
        if created < EXPIRY_INTRODUCED:
            return None, None
        if created >= NEVER_EXPIRE_INTRODUCED:
            draw = self.random.random()
            if draw < 0.07:
                return None, True
            if draw < 0.13:
                return add_months(created, self.random.choice([9, 12])), False
            if draw < 0.40:
                return add_months(created, 6), False
        return add_months(created, 6), None

    def instants(self, archetype: str, kind: str) -> tuple:
        """Draw (created, lastUsed, expirationDate, flag) that fit the archetype."""
        hour = self.random.randrange(0, 6) if kind == "service" else None
        legacy = 0.12 if kind == "service" else 0.06
        for _ in range(1000):
            last_used = None
            if archetype in (EXPIRING, EXPIRED):
                if archetype == EXPIRING:
                    target = self.time_of_day(days_before(-self.random.randint(1, 13)), None)
                else:
                    target = self.time_of_day(days_before(self.random.randint(1, 200)), None)
                # The default expiry: six months after creation, on or just before target.
                created = add_months(target, -6)
                expiry = add_months(created, 6)
                flag = False if created >= NEVER_EXPIRE_INTRODUCED and \
                    self.random.random() < 0.25 else None
                used = self.random.random()
                newest = min(expiry, ANCHOR)
                oldest_days = (ANCHOR - created).days - 1
                newest_days = (ANCHOR - newest).days + 1
                if used < 0.6 and newest_days <= oldest_days:
                    # Used until shortly before it expired (or until now).
                    last_used = self.day(newest_days, min(newest_days + 12, oldest_days), hour)
                elif used < 0.8 and newest_days <= oldest_days:
                    last_used = self.day(newest_days, oldest_days, hour)
            else:
                if archetype == ACTIVE:
                    last_used = self.day(1, 2 if kind == "service" else 6, hour)
                    span, legacy_share = 160, legacy
                elif archetype == RECENT:
                    last_used = self.day(7, 50, hour)
                    span, legacy_share = 120, legacy
                elif archetype == STALE_60:
                    last_used = self.day(62, 86, hour)
                    span, legacy_share = 100, legacy
                elif archetype == STALE_90:
                    last_used = self.day(93, 195, hour)
                    span, legacy_share = 150, legacy
                elif archetype == STALE_200:
                    last_used = self.day(200, 620, hour)
                    span, legacy_share = 200, 0.35
                if archetype == NEVER_OLD:
                    created = self.day(31, 500)
                elif archetype == NEVER_NEW:
                    created = self.day(1, 29)
                else:
                    created = self.created_for((ANCHOR - last_used).days, span, legacy_share)
                expiry, flag = self.expiry_for(created)

            if created < OLDEST_CREATED or created >= ANCHOR:
                continue
            if last_used is not None and not created < last_used < ANCHOR:
                continue
            if last_used is not None and expiry is not None and last_used >= expiry:
                continue
            live = expiry is None or expiry > ANCHOR + timedelta(days=14)
            if archetype in (ACTIVE, RECENT, STALE_60, NEVER_NEW) and not live:
                continue
            return created, last_used, expiry, flag
        raise RuntimeError(f"no instants fit archetype {archetype}")

    def precision(self) -> str:
        draw = self.random.random()
        if draw < 0.05:
            return "micro"
        if draw < 0.10:
            return "none"
        return "milli"

    def validity(self, kind: str) -> int:
        draw = self.random.random()
        if kind == "service" and draw < 0.15:
            return 3600
        if draw < 0.05:
            return 900
        if draw < 0.08:
            return 3600
        return 43200

    def scope_for(self, purpose: str, kind: str, created: datetime) -> list | None:
        """Pick the purpose's scopes. Some owners chose sp:scopes:all instead, and some legacy
        tokens have a null scope, which the API allows."""
        if created < EXPIRY_INTRODUCED and self.random.random() < 0.2:
            return None
        lazy_share = 0.1 if kind == "service" else 0.2
        if self.random.random() < lazy_share:
            return list(SCOPES["admin"])
        return list(SCOPES[purpose])


def format_instant(instant: datetime, precision: str) -> str:
    base = instant.strftime("%Y-%m-%dT%H:%M:%S")
    if precision == "micro":
        return f"{base}.{instant.microsecond:06d}Z"
    if precision == "none":
        return f"{base}Z"
    return f"{base}.{instant.microsecond // 1000:03d}Z"


def truncate(instant: datetime | None, precision: str) -> datetime | None:
    """Drop the digits that the chosen format cannot show, so the file is exact."""
    if instant is None or precision == "micro":
        return instant
    if precision == "none":
        return instant.replace(microsecond=0)
    return instant.replace(microsecond=instant.microsecond // 1000 * 1000)


def token_object(token_id: str, name: str, scope: list | None, owner: dict,
                 created: datetime, last_used: datetime | None, omit_last_used: bool,
                 managed: bool, validity: int, expiry: datetime | None,
                 never_expires_flag: bool | None, precision: str) -> dict:
    """Build one token in the field order of the API's list response."""
    token = {
        "id": token_id,
        "name": name,
        "scope": scope,
        "owner": owner,
        "created": format_instant(truncate(created, precision), precision),
    }
    if not omit_last_used:
        token["lastUsed"] = (None if last_used is None
                             else format_instant(truncate(last_used, precision), precision))
    token["managed"] = managed
    token["accessTokenValiditySeconds"] = validity
    token["expirationDate"] = (None if expiry is None
                               else format_instant(truncate(expiry, precision), precision))
    if never_expires_flag is not None:
        token["userAwareTokenNeverExpires"] = never_expires_flag
    return token


def departed_pool() -> list:
    """Return the staff and engineer names, without names that differ only in case."""
    pool = {}
    for name, purpose in STAFF_TOKENS + ENGINEER_TOKENS:
        pool.setdefault(name.lower(), (name, purpose))
    return list(pool.values())


def generate(seed: int = SEED) -> list:
    """Generate the tenant's tokens, ordered by creation like the list response."""
    generator = Generator(seed)
    rng = generator.random
    tokens = []
    pools = {
        "engineer": ENGINEER_TOKENS, "staff": STAFF_TOKENS,
        "contractor": CONTRACTOR_TOKENS, "departed": departed_pool(),
    }
    workflow_names = list(WORKFLOW_NAMES)
    rng.shuffle(workflow_names)

    for owner_name, kind, count in OWNERS:
        owner_id = FIXED_OWNER_IDS.get(owner_name) or generator.new_owner_id()
        owner = {"type": "IDENTITY", "id": owner_id, "name": owner_name}
        pins = [pin for pin in PINNED_TOKENS if pin.owner == owner_name]
        for pin in pins:
            precision = "milli"
            tokens.append(token_object(
                pin.token_id or generator.new_token_id(), pin.name, list(pin.scope), owner,
                pin.created, pin.last_used, False, False, pin.validity, pin.expiration,
                pin.never_expires_flag, precision))

        plans = []  # (name, purpose, archetype or None, managed)
        for _ in range(WORKFLOW_TOKENS.get(owner_name, 0)):
            plans.append((workflow_names.pop(), "admin", None, True))
        if kind == "service":
            catalog = SERVICE_CATALOG[owner_name]
            plans.extend((name, purpose, archetype, False) for name, purpose, archetype in catalog)
        else:
            pool = list(pools[kind])
            rng.shuffle(pool)
            plans.extend((name, purpose, None, False) for name, purpose in pool)
        plans = plans[:count - len(pins)]
        if len(plans) + len(pins) != count:
            raise RuntimeError(f"catalog of {owner_name} has fewer than {count} tokens")

        weights = WEIGHTS[kind]
        for name, purpose, archetype, managed in plans:
            if managed:
                created, last_used, expiry, flag = workflow_instants(generator, kind)
                validity = 43200
            else:
                if archetype is None:
                    archetype = rng.choices(list(weights), list(weights.values()))[0]
                created, last_used, expiry, flag = generator.instants(archetype, kind)
                validity = generator.validity(kind)
            scope = list(SCOPES["admin"]) if managed else \
                generator.scope_for(purpose, kind, created)
            omit_last_used = last_used is None and rng.random() < 0.3
            tokens.append(token_object(
                generator.new_token_id(), name, scope, owner, created, last_used,
                omit_last_used, managed, validity, expiry, flag, generator.precision()))

    tokens.sort(key=lambda token: (parse_instant(token["created"]), token["id"]))
    return tokens


def workflow_instants(generator: Generator, kind: str) -> tuple:
    """Draw the instants of a managed Workflow token: no expiry, used by its daily run
    unless the workflow was switched off (always off once its owner has left)."""
    rng = generator.random
    hour = rng.randrange(0, 24)
    if kind == "departed" or rng.random() < 0.3:
        created = generator.day(130, 700)
        created_days = (ANCHOR - created).days
        last_used = generator.day(100, min(400, created_days - 1), hour)
    else:
        created = generator.day(40, 700)
        last_used = generator.day(1, 1, hour)
    return created, last_used, None, None


INSTANT_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6})?Z$")
HEX_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
KEYS = {"id", "name", "scope", "owner", "created", "lastUsed", "managed",
        "accessTokenValiditySeconds", "expirationDate", "userAwareTokenNeverExpires"}


def parse_instant(text: str) -> datetime:
    if not INSTANT_PATTERN.match(text):
        raise ValueError(f"instant {text!r} is not YYYY-MM-DDTHH:MM:SS[.sss|.ssssss]Z")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def token_problems(token: dict) -> list:
    """Return the problems of one token: its shape and the order of its instants."""
    where = f"token {token.get('id')} ({token.get('name')})"
    missing = {"id", "name", "scope", "owner", "created"} - token.keys()
    unknown = token.keys() - KEYS
    if missing or unknown:
        return [f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}"]

    problems = []
    if not HEX_ID_PATTERN.match(token["id"]):
        problems.append(f"{where}: id is not 32 lowercase hex digits")
    owner = token["owner"]
    if owner.get("type") != "IDENTITY" or not HEX_ID_PATTERN.match(owner.get("id", "")) \
            or not owner.get("name"):
        problems.append(f"{where}: owner is not an IDENTITY with a hex id and a name")
    scope = token["scope"]
    if scope is not None and (not scope or not all(isinstance(item, str) for item in scope)):
        problems.append(f"{where}: scope is neither null nor a list of scopes")
    if not isinstance(token.get("managed"), bool):
        problems.append(f"{where}: managed is not a boolean")
    if token.get("accessTokenValiditySeconds") not in (43200, 3600, 900):
        problems.append(f"{where}: accessTokenValiditySeconds is not 43200, 3600 or 900")

    try:
        created = parse_instant(token["created"])
        last_used = token.get("lastUsed")
        last_used = None if last_used is None else parse_instant(last_used)
        expiry = token.get("expirationDate")
        expiry = None if expiry is None else parse_instant(expiry)
    except ValueError as error:
        return problems + [f"{where}: {error}"]
    if created >= ANCHOR:
        problems.append(f"{where}: created is not before the anchor")
    if last_used is not None and not created < last_used < ANCHOR:
        problems.append(f"{where}: lastUsed is not between created and the anchor")
    if expiry is not None and expiry <= created:
        problems.append(f"{where}: expirationDate is not after created")
    if expiry is not None and last_used is not None and last_used >= expiry:
        problems.append(f"{where}: lastUsed is not before expirationDate")
    flag = token.get("userAwareTokenNeverExpires")
    if flag is not None and flag != (expiry is None):
        problems.append(f"{where}: userAwareTokenNeverExpires contradicts expirationDate")
    return problems


def validate(tokens: list) -> list:
    """Return the problems of the list: every token's, then those across tokens
    (unique ids, one name per owner id, unique names per owner, the per-owner limit)."""
    problems = []
    for token in tokens:
        problems += token_problems(token)
    if problems:
        return problems

    for token_id, count in Counter(token["id"] for token in tokens).items():
        if count > 1:
            problems.append(f"token id {token_id} appears {count} times")

    owner_names = {}
    for token in tokens:
        owner = token["owner"]
        if owner_names.setdefault(owner["id"], owner["name"]) != owner["name"]:
            problems.append(f"owner id {owner['id']} has two names")
    names = Counter((token["owner"]["id"], token["name"]) for token in tokens)
    for (owner_id, name), count in names.items():
        if count > 1:
            problems.append(f"owner {owner_id} has {count} tokens named {name!r}")
    for owner_id, count in Counter(token["owner"]["id"] for token in tokens).items():
        if count > TOKENS_PER_OWNER_LIMIT:
            problems.append(f"owner {owner_id} has {count} tokens, "
                            f"over the limit of {TOKENS_PER_OWNER_LIMIT}")

    auditor = [token for token in tokens if token["id"] == AUDITOR_TOKEN_ID]
    if len(auditor) != 1 or auditor[0]["name"] != AUDITOR_TOKEN_NAME:
        problems.append(f"the auditor token {AUDITOR_TOKEN_ID} ({AUDITOR_TOKEN_NAME}) is missing")
    return problems


def check_policy_references(tokens: list, policy: Path) -> list:
    """Return a problem for each token_id or owner_id in the policy that no token has."""
    token_ids = {token["id"] for token in tokens}
    owner_ids = {token["owner"]["id"] for token in tokens}
    problems = []
    text = policy.read_text(encoding="utf-8")
    for key, value in re.findall(r'^(token_id|owner_id)\s*=\s*"([^"]*)"', text, re.MULTILINE):
        known = token_ids if key == "token_id" else owner_ids
        if value not in known:
            problems.append(f"{policy.name}: {key} = \"{value}\" matches no generated token")
    return problems


def summarize(tokens: list) -> list:
    """Count the tokens per category at the anchor, with ages measured from lastUsed itself."""
    counts = Counter()
    for token in tokens:
        created = parse_instant(token["created"])
        last_used = token.get("lastUsed")
        expiry = token.get("expirationDate")
        expiry = None if expiry is None else parse_instant(expiry)
        if last_used is None:
            age = (ANCHOR - created).days
            counts["never used, created 30+ days ago" if age >= 30
                   else "never used, created under 30 days ago"] += 1
            if age < 14:
                counts["  of which created under 14 days ago"] += 1
            counts["  lastUsed null" if "lastUsed" in token else "  lastUsed key absent"] += 1
        else:
            days = (ANCHOR - parse_instant(last_used)).days
            if days < 14:
                counts["used within 14 days"] += 1
            elif days < 60:
                counts["last used 14-59 days ago"] += 1
            elif days < 90:
                counts["last used 60-89 days ago"] += 1
            elif days < 200:
                counts["last used 90-199 days ago"] += 1
            else:
                counts["last used 200+ days ago"] += 1
        if token["managed"]:
            counts["managed (Workflow)"] += 1
            if last_used is not None and (ANCHOR - parse_instant(last_used)).days >= 90:
                counts["  managed, last used 90+ days ago"] += 1
        if expiry is None:
            counts["never expires"] += 1
            if "sp:scopes:all" in (token["scope"] or []):
                counts["  never expires with sp:scopes:all"] += 1
            if token.get("userAwareTokenNeverExpires"):
                counts["  with userAwareTokenNeverExpires true"] += 1
        elif expiry <= ANCHOR:
            counts["expired"] += 1
        elif expiry <= ANCHOR + timedelta(days=14):
            counts["expiring within 14 days"] += 1
        if token["scope"] is None:
            counts["scope null"] += 1
        if token["name"].startswith("break-glass"):
            counts["break-glass"] += 1
        counts[f"accessTokenValiditySeconds {token['accessTokenValiditySeconds']}"] += 1
        fraction = re.search(r"(\.\d+)?Z$", token["created"]).group(1) or ""
        counts[f"instants with {max(len(fraction) - 1, 0)} fraction digits"] += 1
    owners = Counter(token["owner"]["id"] for token in tokens)
    lines = [f"{len(tokens)} tokens, {len(owners)} owners, "
             f"at most {max(owners.values())} tokens per owner (anchor {ANCHOR:%Y-%m-%dT%H:%M:%SZ})"]
    order = [
        "used within 14 days", "last used 14-59 days ago", "last used 60-89 days ago",
        "last used 90-199 days ago", "last used 200+ days ago",
        "never used, created 30+ days ago", "never used, created under 30 days ago",
        "  of which created under 14 days ago", "  lastUsed null", "  lastUsed key absent",
        "managed (Workflow)", "  managed, last used 90+ days ago", "expiring within 14 days",
        "expired", "never expires", "  never expires with sp:scopes:all",
        "  with userAwareTokenNeverExpires true", "scope null", "break-glass",
    ]
    order += sorted(key for key in counts if key.startswith(("access", "instants")))
    lines += [f"  {key:<42} {counts[key]:>4}" for key in order]
    return lines


def render(tokens: list) -> str:
    return json.dumps(tokens, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="file to write (default: config/demo-tokens.json)")
    parser.add_argument("--check", action="store_true",
                        help="compare the output file with the generated list instead of "
                             "writing it; exit 1 when they differ")
    arguments = parser.parse_args()

    tokens = generate()
    if len(tokens) != TOKEN_COUNT:
        print(f"error: generated {len(tokens)} tokens, expected {TOKEN_COUNT}", file=sys.stderr)
        return 1
    problems = validate(tokens) + check_policy_references(tokens, DEMO_POLICY)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    text = render(tokens)

    if arguments.check:
        current = arguments.output.read_text(encoding="utf-8")
        if current != text:
            print(f"{arguments.output} differs from the generated list. "
                  f"Run scripts/gen-demo-tokens.py to rewrite it.", file=sys.stderr)
            return 1
        print(f"{arguments.output} matches the generated list")
        return 0

    arguments.output.write_text(text, encoding="utf-8")
    print(f"wrote {arguments.output}")
    for line in summarize(tokens):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
