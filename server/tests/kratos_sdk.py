"""Ory's own Python SDK (`ory-kratos-client`, installed by `scripts/test`)
against a running `reclaim serve`: every identity admin call a platform
makes, each answer parsed by the SDK's own models. Run by
`server/tests/all/kratos_sdk.rs`; exits non-zero at the first surprise.

    kratos_sdk.py BASE_URL ADMIN_TOKEN
"""

import sys
import uuid

import ory_kratos_client
from ory_kratos_client.api.identity_api import IdentityApi
from ory_kratos_client.exceptions import ApiException
from ory_kratos_client.models import (
    CreateIdentityBody,
    CreateRecoveryLinkForIdentityBody,
    IdentityPatch,
    JsonPatch,
    PatchIdentitiesBody,
    UpdateIdentityBody,
)


def main(base: str, token: str) -> None:
    configuration = ory_kratos_client.Configuration(
        host=base,
        api_key={"oryAccessToken": token},
        api_key_prefix={"oryAccessToken": "Bearer"},
    )
    with ory_kratos_client.ApiClient(configuration) as client:
        api = IdentityApi(client)

        ann = api.create_identity(CreateIdentityBody(
            schema_id="default",
            traits={"email": "ann@example.com", "name": "Ann", "locale": "de"},
            external_id="platform-user-17",
            metadata_admin={"second_factor": True},
        ))
        assert ann.state == "active", ann
        assert ann.recovery_addresses[0].value == "ann@example.com", ann
        assert ann.recovery_addresses[0].via == "email", ann
        assert ann.metadata_admin["second_factor"] is True, ann
        pk = ann.metadata_admin["pk"]
        assert isinstance(pk, int), ann

        assert api.get_identity(ann.id).traits["name"] == "Ann"
        assert api.get_identity_by_external_id("platform-user-17").id == ann.id

        listed = api.list_identities(credentials_identifier="ANN@example.com")
        assert [i.id for i in listed] == [ann.id], listed
        assert api.list_identities(credentials_identifier="nobody@example.com") == []

        link = api.create_recovery_link_for_identity(
            create_recovery_link_for_identity_body=CreateRecoveryLinkForIdentityBody(identity_id=ann.id)
        )
        assert "token=" in link.recovery_link, link

        inactive = api.update_identity(ann.id, UpdateIdentityBody(
            schema_id="default",
            state="inactive",
            traits=ann.traits,
            external_id="platform-user-17",
        ))
        assert inactive.state == "inactive", inactive
        assert inactive.state_changed_at is not None
        # The second factor was not restated: a PUT replaces it.
        assert inactive.metadata_admin["second_factor"] is False, inactive

        moved = api.patch_identity(ann.id, [
            JsonPatch(op="replace", path="/traits/email", value="ann@new.example"),
            JsonPatch(op="replace", path="/state", value="active"),
        ])
        assert moved.recovery_addresses[0].value == "ann@new.example", moved
        assert moved.state == "active", moved

        try:
            api.create_identity(CreateIdentityBody(
                schema_id="default", traits={"email": "ANN@new.example"},
            ))
            raise AssertionError("a taken address was accepted")
        except ApiException as e:
            assert e.status == 409, e

        batch = api.batch_patch_identities(PatchIdentitiesBody(identities=[
            IdentityPatch(
                patch_id=str(uuid.uuid4()),
                create=CreateIdentityBody(
                    schema_id="default", traits={"email": f"user{i}@example.com"},
                ),
            )
            for i in range(200)
        ] + [
            IdentityPatch(
                patch_id=str(uuid.uuid4()),
                create=CreateIdentityBody(schema_id="default", traits={"email": "ann@new.example"}),
            ),
        ]))
        actions = [slot.action for slot in batch.identities]
        assert actions.count("create") == 200, actions
        assert actions[-1] == "error", batch.identities[-1]
        assert all(slot.patch_id for slot in batch.identities)

        page = api.list_identities_with_http_info(page_size=100)
        assert len(page.data) == 100, len(page.data)
        headers = {name.lower(): value for name, value in page.headers.items()}
        assert 'rel="next"' in headers["link"], headers

        api.delete_identity_sessions(ann.id)
        api.delete_identity(ann.id)
        try:
            api.get_identity(ann.id)
            raise AssertionError("a deleted identity was found")
        except ApiException as e:
            assert e.status == 404, e

    print("kratos sdk: ok, 13 calls")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
