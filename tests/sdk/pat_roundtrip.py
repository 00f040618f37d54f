"""List and delete personal access tokens through SailPoint's official Python SDK.

tests/sdk_python.rs runs this script with the interpreter of .venv-sdk against
`patrol sim`, to show that the SDK works against the simulated tenant unchanged.
The SDK is used exactly as its documentation shows: a Configuration built from
ConfigurationParams (which fetches the access token), an ApiClient, and the
PersonalAccessTokensApi of the personal-access-tokens resource.

Input, from the environment:
  SIM_BASE_URL        base URL of the tenant, like http://127.0.0.1:41234
  SIM_CLIENT_ID       client id (PAT id) for /oauth/token
  SIM_CLIENT_SECRET   client secret
  SIM_CUTOFF          instant for the `lastUsed le` filter, RFC 3339
  SIM_DELETE_ID       id of the token to delete

Output: one JSON object on stdout with the ids of each listing, the fields the
SDK parsed for every token, and the HTTP status of a second delete of the same
id. Any SDK error ends the script with a traceback and a non-zero exit code.
"""

import json
import os
import sys

from sailpoint import ApiClient, Configuration, PersonalAccessTokensApi
from sailpoint.configuration import ConfigurationParams
from sailpoint.exceptions import ApiException


def main() -> int:
    params = ConfigurationParams()
    params.base_url = os.environ["SIM_BASE_URL"]
    params.client_id = os.environ["SIM_CLIENT_ID"]
    params.client_secret = os.environ["SIM_CLIENT_SECRET"]
    cutoff = os.environ["SIM_CUTOFF"]
    delete_id = os.environ["SIM_DELETE_ID"]

    configuration = Configuration(params)
    if configuration.access_token is None:
        print("the SDK could not get an access token", file=sys.stderr)
        return 1

    with ApiClient(configuration) as api_client:
        api = PersonalAccessTokensApi(api_client)

        everything = api.list_personal_access_tokens_v1()
        stale = api.list_personal_access_tokens_v1(filters=f"lastUsed le {cutoff}")
        never_used = api.list_personal_access_tokens_v1(filters="lastUsed isnull")
        mine = api.list_personal_access_tokens_v1(owner_id="me")

        api.delete_personal_access_token_v1(id=delete_id)
        after_delete = api.list_personal_access_tokens_v1()

        try:
            api.delete_personal_access_token_v1(id=delete_id)
            second_delete_status = 204
        except ApiException as error:
            second_delete_status = error.status

    def ids(tokens):
        return [token.id for token in tokens]

    result = {
        "all": ids(everything),
        "stale": ids(stale),
        "never_used": ids(never_used),
        "mine": ids(mine),
        "after_delete": ids(after_delete),
        "second_delete_status": second_delete_status,
        "parsed": {
            token.id: {
                "last_used": token.last_used.isoformat() if token.last_used else None,
                "owner_id": token.owner.id,
                "managed": token.managed,
                "expiration_date": (
                    token.expiration_date.isoformat() if token.expiration_date else None
                ),
            }
            for token in everything
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
