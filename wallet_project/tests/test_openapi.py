"""The OpenAPI document says what the server does: the properties a client relies on most.

The contract run (test_contract.py) checks the whole document against the server;
these fail fast, and by name, when one of the key properties regresses.
"""

from __future__ import annotations

import json
import re

import jsonschema
import jsonschema_rs
import pytest
from django.conf import settings
from django.test import Client
from rest_framework_simplejwt.tokens import RefreshToken

from foundation.currencies import supported_currencies
from foundation.errors import PROBLEM_CONTENT_TYPE
from transfers.idempotency import KEY_PATTERN

MONEY_POSTS = ["v1_wallets_deposits_create", "v1_wallets_withdrawals_create", "v1_transfers_create"]
PUBLIC = {
    "v1_auth_register_create",
    "v1_auth_token_create",
    "v1_auth_token_refresh_create",
    "v1_auth_logout_create",
}
LISTS = ["v1_wallets_list", "v1_transfers_list", "v1_wallets_transactions_list"]
STRICT_BODIES = [
    "RegisterRequest",
    "RefreshTokenRequest",
    "LoginRequest",
    "WalletCreateRequest",
    "WalletUpdateRequest",
    "MovementRequest",
    "TransferCreateRequest",
]


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def operations(schema: dict) -> dict[str, dict]:
    return {
        operation["operationId"]: operation
        for item in schema["paths"].values()
        for method, operation in item.items()
        if method in {"get", "post", "patch", "put", "delete"}
    }


def component(schema: dict, name: str) -> dict:
    return schema["components"]["schemas"][name]


def body_component(schema: dict, operation_id: str) -> str:
    ref = operations(schema)[operation_id]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


@pytest.mark.parametrize("name", ["MovementRequest", "TransferCreateRequest"])
def test_amounts_are_integers_from_1_to_the_movement_limit(schema, name):
    amount = component(schema, name)["properties"]["amount"]

    assert (amount["type"], amount["minimum"]) == ("integer", 1)
    assert amount["maximum"] == settings.MAX_MOVEMENT_AMOUNT
    assert "amount" in component(schema, name)["required"]


@pytest.mark.parametrize("name", STRICT_BODIES)
def test_strict_request_bodies_forbid_undeclared_fields(schema, name):
    assert component(schema, name)["additionalProperties"] is False


def test_login_body_is_strict_like_every_other_body(schema):
    assert body_component(schema, "v1_auth_token_create") == "LoginRequest"


def test_reference_is_1_to_128_printable_ascii_or_null(schema):
    reference = component(schema, "MovementRequest")["properties"]["reference"]

    assert (reference["minLength"], reference["maxLength"], reference["nullable"]) == (1, 128, True)
    assert re.fullmatch(reference["pattern"], "invoice-42 ~")
    assert not re.search(reference["pattern"], "caf\u00e9")
    assert not re.search(reference["pattern"], "line\nbreak")


def test_currency_is_one_of_the_supported_codes(schema):
    currency = component(schema, "WalletCreateRequest")["properties"]["currency"]
    enum = component(schema, currency["allOf"][0]["$ref"].rsplit("/", 1)[1])["enum"]

    assert enum == supported_currencies()


def test_free_text_fields_refuse_nul(schema):
    description = component(schema, "MovementRequest")["properties"]["description"]

    assert re.fullmatch(description["pattern"], "")
    assert re.fullmatch(description["pattern"], "top-up")
    assert not re.search(description["pattern"], "a\x00b")


@pytest.mark.parametrize("blank", [" ", "\t\n", "\x1f", "\u3000", "\x85\xa0"])
def test_fields_that_refuse_a_blank_refuse_whitespace_alone_as_the_server_trims_it(schema, blank):
    # DRF trims with str.strip(); a value it strips to nothing is "blank" (400).
    login = component(schema, body_component(schema, "v1_auth_token_create"))
    pattern = login["properties"]["username"]["pattern"]

    assert blank.strip() == ""
    assert not re.search(pattern, blank)
    assert re.fullmatch(pattern, f"{blank}alice{blank}")


def test_renaming_a_wallet_requires_its_name(schema):
    assert body_component(schema, "v1_wallets_partial_update") == "WalletUpdateRequest"
    assert component(schema, "WalletUpdateRequest")["required"] == ["name"]


@pytest.mark.parametrize("operation_id", MONEY_POSTS)
def test_money_posts_require_a_printable_idempotency_key(schema, operation_id):
    (key,) = [p for p in operations(schema)[operation_id]["parameters"] if p["name"] == "Idempotency-Key"]

    assert key["in"] == "header"
    assert key["required"] is True
    assert key["schema"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": KEY_PATTERN.pattern,
    }


@pytest.mark.parametrize("operation_id", MONEY_POSTS)
def test_money_posts_document_every_problem_they_answer(schema, operation_id):
    responses = operations(schema)[operation_id]["responses"]

    assert set(responses) == {"201", "400", "401", "404", "406", "409", "413", "415", "422", "429", "503"}
    assert "Idempotent-Replayed" in responses["201"]["headers"]
    for status in ("429", "503"):
        assert responses[status]["headers"]["Retry-After"]["required"] is True


def test_every_error_response_is_a_problem_json(schema):
    for operation_id, operation in operations(schema).items():
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == {
                    PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (operation_id, status)
    assert set(component(schema, "Problem")["required"]) == {"type", "title", "status", "detail", "code"}


def test_401_is_documented_where_a_token_or_credentials_are_checked(schema):
    for operation_id, operation in operations(schema).items():
        expected = operation_id != "v1_auth_register_create"
        assert ("401" in operation["responses"]) is expected, operation_id
        if operation_id not in PUBLIC:
            assert operation["security"] == [{"jwtAuth": []}], operation_id


def test_every_operation_documents_rate_limiting_and_unavailability(schema):
    for operation_id, operation in operations(schema).items():
        assert {"429", "503"} <= set(operation["responses"]), operation_id


def test_filtering_transfers_by_someone_elses_wallet_is_a_documented_404(schema):
    assert "404" in operations(schema)["v1_transfers_list"]["responses"]


@pytest.mark.parametrize("operation_id", LISTS)
def test_page_size_is_at_least_one(schema, operation_id):
    (limit,) = [p for p in operations(schema)[operation_id]["parameters"] if p["name"] == "limit"]

    assert (limit["schema"]["type"], limit["schema"]["minimum"]) == ("integer", 1)


def test_logout_answers_205_without_a_body(schema):
    assert "content" not in operations(schema)["v1_auth_logout_create"]["responses"]["205"]


def test_movements_answer_the_transfer_and_the_wallet(schema):
    created = operations(schema)["v1_wallets_deposits_create"]["responses"]["201"]
    ref = created["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]

    assert set(component(schema, ref)["required"]) == {"transfer", "wallet"}


def test_links_lead_from_what_was_created_to_where_it_is_used(schema):
    ops = operations(schema)
    wallet_links = ops["v1_wallets_create"]["responses"]["201"]["links"]
    deposit_links = ops["v1_wallets_deposits_create"]["responses"]["201"]["links"]
    transfer_links = ops["v1_transfers_create"]["responses"]["201"]["links"]

    assert wallet_links["DepositIntoWallet"]["parameters"] == {"id": "$response.body#/id"}
    assert deposit_links["GetTransfer"] == {
        "operationId": "v1_transfers_retrieve",
        "parameters": {"id": "$response.body#/transfer/id"},
    }
    assert transfer_links["GetTransfer"]["parameters"] == {"id": "$response.body#/id"}
    for links in (wallet_links, deposit_links, transfer_links):
        assert {link["operationId"] for link in links.values()} <= set(ops)


def parameter_validator(schema: dict, subschema: dict) -> jsonschema_rs.Validator:
    # jsonschema_rs (schemathesis's validator) checks formats such as uuid and date-time.
    return jsonschema_rs.Draft202012Validator(
        {**subschema, "components": schema["components"]}, validate_formats=True
    )


def test_every_parameter_has_examples_that_its_schema_accepts(schema):
    # Schemathesis's examples phase skips an operation without examples; Swagger shows them.
    checked = 0
    for operation_id, operation in operations(schema).items():
        for parameter in operation.get("parameters", []):
            where = (operation_id, parameter["in"], parameter["name"])
            assert parameter.get("examples"), where
            validator = parameter_validator(schema, parameter["schema"])
            for name, example in parameter["examples"].items():
                assert not list(validator.iter_errors(example["value"])), (*where, name)
                checked += 1
    assert checked > 50  # the path ids, filters, pages and Idempotency-Keys of 28 operations


@pytest.mark.parametrize(
    ("subschema", "invalid"),
    [
        ({"type": "string", "format": "uuid"}, "not-a-uuid"),
        ({"type": "string", "format": "date-time"}, "2026-12"),
    ],
)
def test_parameter_examples_are_checked_for_their_format(schema, subschema, invalid):
    # The check above would pass any string if formats were not enforced.
    assert not parameter_validator(schema, subschema).is_valid(invalid)


def test_the_cursor_example_is_a_cursor_the_server_accepts(schema, make_user):
    (cursor,) = [p for p in operations(schema)["v1_wallets_list"]["parameters"] if p["name"] == "cursor"]
    token = RefreshToken.for_user(make_user()).access_token

    for example in cursor["examples"].values():
        response = Client().get(
            "/api/v1/wallets/", {"cursor": example["value"]}, HTTP_AUTHORIZATION=f"Bearer {token}"
        )
        assert response.status_code == 200, response.content


def test_every_operation_with_a_path_parameter_is_the_target_of_a_link(schema):
    # The stateful phase reaches /things/{id} with an id the server made, not a random one
    # (which is a 404 that tests nothing behind it).
    ops = operations(schema)
    targets = {
        link["operationId"]
        for operation in ops.values()
        for response in operation["responses"].values()
        for link in response.get("links", {}).values()
    }
    with_path_parameter = {
        operation_id
        for operation_id, operation in ops.items()
        if any(parameter["in"] == "path" for parameter in operation.get("parameters", []))
    }

    assert len(with_path_parameter) > 20
    # An event's id is only in pages of events (see foundation.openapi.LINKS).
    assert with_path_parameter - targets == {"v1_events_retrieve"}
    assert targets <= set(ops)


def test_links_fill_every_required_path_parameter_of_their_target(schema):
    ops = operations(schema)
    for source_id, operation in ops.items():
        for status, response in operation["responses"].items():
            for name, link in response.get("links", {}).items():
                target = ops[link["operationId"]]
                required = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
                assert required <= set(link.get("parameters", {})), (source_id, status, name)
                for expression in link.get("parameters", {}).values():
                    assert re.fullmatch(
                        r"\$(response\.body#(/[\w]+)+|request\.header\.[\w-]+)", expression
                    ), (
                        source_id,
                        name,
                        expression,
                    )


def test_every_request_body_has_examples_that_its_schema_accepts(schema):
    for operation_id, operation in operations(schema).items():
        if "requestBody" not in operation:
            continue
        content = operation["requestBody"]["content"]["application/json"]
        assert content.get("examples"), operation_id
        validator = jsonschema.Draft7Validator({**content["schema"], "components": schema["components"]})
        for name, example in content["examples"].items():
            value = example["value"]
            assert not list(validator.iter_errors(value)), (operation_id, name)
            assert "string" not in value.values(), (operation_id, name)
