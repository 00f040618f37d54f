"""The peer of the benchmark: the stale-token cleanup an ISC admin would write on
SailPoint's official Python SDK (PyPI `sailpoint`, the version pinned in
tests/sdk/requirements.txt), run with the interpreter of .venv-sdk.

It does what such a script does and nothing more:
1. build a Configuration from the base URL and the client credentials, which fetches
   the access token,
2. list `lastUsed le <now - 90 days>` and `lastUsed isnull` through the
   per-resource API (`/personal-access-tokens/v1`), the only PAT API this SDK version
   exposes,
3. keep the tokens the policy deletes, which were used before the cutoff or never used
   and created more than 30 days ago, and skip managed tokens and the script's own token,
4. with --apply, delete them one by one, in listing order, with the SDK's retry
   settings left at their defaults. In SDK 2.1.72 `Configuration.retries` is None, so
   urllib3's `Retry(3)` applies. That retries DELETE up to 3 times on a 429 only when
   the response carries `Retry-After`, sleeps for exactly that delay, and has no backoff.
   A delete that still fails is counted and the script moves on, as a cautious admin
   script would.

The client secret comes from the environment (PEER_CLIENT_SECRET). The script prints
one JSON object on stdout: counts per listing, candidates, deleted, failed with the
error types, and the seconds spent after the imports.
"""

import argparse
import json
import os
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

STARTED = time.monotonic()

from sailpoint import ApiClient, Configuration, PersonalAccessTokensApi  # noqa: E402
from sailpoint.configuration import ConfigurationParams  # noqa: E402

IMPORTED = time.monotonic()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--unused-days", type=int, default=90)
    parser.add_argument("--never-used-days", type=int, default=30)
    parser.add_argument("--apply", action="store_true", help="delete the stale tokens")
    args = parser.parse_args()

    params = ConfigurationParams()
    params.base_url = args.base_url
    params.client_id = args.client_id
    params.client_secret = os.environ["PEER_CLIENT_SECRET"]
    configuration = Configuration(params)
    if configuration.access_token is None:
        print("the SDK could not get an access token", file=sys.stderr)
        return 1

    now = datetime.now(timezone.utc)
    cutoff = now - timedelta(days=args.unused_days)
    created_cutoff = now - timedelta(days=args.never_used_days)
    cutoff_text = cutoff.strftime("%Y-%m-%dT%H:%M:%S.") + f"{cutoff.microsecond // 1000:03d}Z"

    result = {"deleted": 0, "failed": 0, "errors": {}}
    with ApiClient(configuration) as api_client:
        api = PersonalAccessTokensApi(api_client)
        unused = api.list_personal_access_tokens_v1(filters=f"lastUsed le {cutoff_text}")
        never_used = api.list_personal_access_tokens_v1(filters="lastUsed isnull")

        candidates = []
        for token in unused + never_used:
            if token.managed or token.id == args.client_id:
                continue
            if token.last_used is None and token.created > created_cutoff:
                continue
            candidates.append(token.id)
        result["listed_unused"] = len(unused)
        result["listed_never_used"] = len(never_used)
        result["candidates"] = len(candidates)

        errors = Counter()
        if args.apply:
            for token_id in candidates:
                try:
                    api.delete_personal_access_token_v1(id=token_id)
                    result["deleted"] += 1
                except Exception as error:  # noqa: BLE001 - count every failure and go on
                    result["failed"] += 1
                    errors[type(error).__name__] += 1
        result["errors"] = dict(errors)

    result["import_seconds"] = IMPORTED - STARTED
    result["work_seconds"] = time.monotonic() - IMPORTED
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
