"""Generate simulated tenants for the benchmark: token lists shaped like the ISC list
response, written as JSON files for `patrol sim --tokens`.

Every tenant is a pure function of its size, kind and seed, relative to the instant `now`,
so repeated runs and both tools see the same tokens. Files go to a directory the caller
picks (a temporary one), never into the repository.

Two kinds:
- `deletion_tenant`: `stale` tokens that both patrol's policy and the peer script delete,
  because they were unused for 120 to 700 days or never used and created 60 to 700 days
  ago. It also has tokens that neither may delete: the auditor's own token, stale managed
  tokens, and recently used tokens. No token lies near a cutoff, so the plain `lastUsed le now-90d`
  filter of an admin script and patrol's stricter reading select the same tokens.
- `scale_tenant`: a mixed tenant of any size (recent, aging, stale, never used, managed,
  expiring, all-scope tokens) for the listing and judging cost.
"""

import json
import random
from datetime import datetime, timedelta, timezone

SCOPES = [
    ["sp:scopes:all"],
    ["sp:all-personal-access-tokens:read"],
    ["idn:sources:read", "idn:accounts:read"],
    ["sp:scopes:default"],
    None,
]
NAMES = ["ci-export", "sync-job", "tmp-debug", "test_report", "reporting", "svc-backup", "migration", "terraform"]


def iso(instant):
    """Format an instant the way the API does: UTC with milliseconds."""
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{instant.microsecond // 1000:03d}Z"


def token_id(kind, number):
    """A 32-digit hex id; `kind` keeps the id spaces of token classes apart."""
    return f"{kind:04x}{number:028x}"


def make_token(rng, ident, owner, now, last_used_days, created_days, managed=False, scope=None, expires_days=None, name=None):
    created = now - timedelta(days=created_days, seconds=rng.randrange(86_400))
    last_used = None
    if last_used_days is not None:
        last_used = now - timedelta(days=last_used_days, seconds=rng.randrange(86_400))
        last_used = max(last_used, created)
    token = {
        "id": ident,
        "name": name or f"{rng.choice(NAMES)}-{ident[-6:]}",
        "scope": scope if scope is not None else rng.choice(SCOPES),
        "owner": {"type": "IDENTITY", "id": owner, "name": f"{'svc-' if owner.endswith('7') else ''}owner {owner[-6:]}"},
        "created": iso(created),
        "lastUsed": iso(last_used) if last_used else None,
        "managed": managed,
        "accessTokenValiditySeconds": 43200,
        "expirationDate": None,
        "userAwareTokenNeverExpires": True,
    }
    if expires_days is not None:
        token["expirationDate"] = iso(now + timedelta(days=expires_days))
        token["userAwareTokenNeverExpires"] = False
    return token


def owner_id(number):
    return f"2c9180{number:026x}"


def deletion_tenant(stale, client_id, now, seed=1):
    """Return (tokens, ids that must be deleted) for the deletion benchmark."""
    rng = random.Random(seed)
    tokens = []
    due = []
    for number in range(stale):
        owner = owner_id(number // 8)
        ident = token_id(0xD, number)
        if number % 2 == 0:
            token = make_token(rng, ident, owner, now, rng.randint(120, 700), 720)
        else:
            token = make_token(rng, ident, owner, now, None, rng.randint(60, 700))
        tokens.append(token)
        due.append(ident)
    # The auditor's own token: recently used. It would be kept anyway; the managed and
    # recent tokens below are what the skip logic of both tools is tested on.
    own = make_token(rng, client_id, owner_id(10**6), now, 0, 30, name="patrol-auditor")
    tokens.append(own)
    for number in range(5):
        tokens.append(make_token(rng, token_id(0xA, number), owner_id(10**6 + 1), now, 400, 720, managed=True))
    for number in range(20):
        tokens.append(make_token(rng, token_id(0xC, number), owner_id(10**6 + 2 + number), now, rng.randint(0, 20), 400))
    rng.shuffle(tokens)
    return tokens, due


def scale_tenant(size, client_id, now, seed=1):
    """Return a mixed tenant of `size` tokens, the auditor's own token included."""
    rng = random.Random(seed)
    tokens = [make_token(rng, client_id, owner_id(10**9), now, 0, 30, name="patrol-auditor")]
    for number in range(size - 1):
        owner = owner_id(number // 8)
        ident = token_id(0x5, number)
        draw = rng.random()
        expires = rng.choice([None, None, rng.randint(-30, 180)])
        if draw < 0.45:
            token = make_token(rng, ident, owner, now, rng.randint(0, 29), rng.randint(30, 900), expires_days=expires)
        elif draw < 0.55:
            token = make_token(rng, ident, owner, now, rng.randint(30, 59), rng.randint(60, 900), expires_days=expires)
        elif draw < 0.63:
            token = make_token(rng, ident, owner, now, rng.randint(60, 88), rng.randint(90, 900), expires_days=expires)
        elif draw < 0.83:
            token = make_token(rng, ident, owner, now, rng.randint(92, 800), 900, expires_days=expires)
        elif draw < 0.95:
            token = make_token(rng, ident, owner, now, None, rng.randint(0, 800), expires_days=expires)
        else:
            last = rng.choice([None, rng.randint(0, 400)])
            token = make_token(rng, ident, owner, now, last, 500, managed=True, expires_days=expires)
        tokens.append(token)
    return tokens


def write(tokens, path):
    """Write a token list as compact JSON, one token per line."""
    with open(path, "w", encoding="utf-8") as out:
        out.write("[\n")
        for index, token in enumerate(tokens):
            if index:
                out.write(",\n")
            out.write(json.dumps(token, separators=(",", ":")))
        out.write("\n]\n")
