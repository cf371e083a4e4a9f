"""The Azure flavor of the ``openai_files`` connection: parsing, URLs, headers, defaults, errors, the form."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_openai_files._compat import AIRFLOW_V_3_2_PLUS
from airflow_openai_files.client.form import conn_fields
from airflow_openai_files.client.retry import classify, error_fields, request_id_from
from airflow_openai_files.client.settings import parse_settings
from airflow_openai_files.exceptions import OpenAIFilesConfigError, OpenAIFilesError, OpenAIFilesRequestError
from airflow_openai_files.limits import AZURE_MULTIPART_THRESHOLD, MiB

ENDPOINT = "https://my-resource.openai.azure.com"
KEY = "0123456789abcdef0123456789SECRET"


def azure(host: str | None = ENDPOINT, password: str | None = KEY, **extra: Any) -> Any:
    return parse_settings("az", host=host, password=password, extra={"flavor": "azure", **extra})


def test_versioned_routes() -> None:
    settings = azure(api_version="2024-10-21")
    assert settings.base_url == f"{ENDPOINT}/openai"
    assert settings.url("files/file-abc") == f"{ENDPOINT}/openai/files/file-abc"
    assert settings.query({"limit": 1}) == {"limit": 1, "api-version": "2024-10-21"}
    assert settings.query(None) == {"api-version": "2024-10-21"}
    assert settings.endpoint == ENDPOINT


def test_v1_routes_without_api_version() -> None:
    settings = azure(api_version="")
    assert settings.base_url == f"{ENDPOINT}/openai/v1"
    assert settings.url("batches") == f"{ENDPOINT}/openai/v1/batches"
    assert settings.query({"limit": 1}) == {"limit": 1}
    assert settings.endpoint == ENDPOINT


@pytest.mark.parametrize(
    "host", [ENDPOINT, f"{ENDPOINT}/", f"{ENDPOINT}/openai", f"{ENDPOINT}/openai/v1/", "my-resource.openai.azure.com"]
)
def test_endpoint_forms_from_the_portal_or_sdk_docs(host: str) -> None:
    assert azure(host=host, api_version="2024-10-21").base_url == f"{ENDPOINT}/openai"
    assert azure(host=host).base_url == f"{ENDPOINT}/openai/v1"


def test_key_auth_headers() -> None:
    headers = azure(organization="org-x").headers()
    assert headers["api-key"] == KEY
    assert "Authorization" not in headers and "OpenAI-Organization" not in headers
    assert headers["User-Agent"].startswith("airflow-provider-openai-files/")


def test_static_entra_token_headers() -> None:
    settings = azure(password=None, azure_ad_token="eyJ0eXAiOiJKV1QiSECRET")
    assert settings.headers()["Authorization"] == "Bearer eyJ0eXAiOiJKV1QiSECRET"
    assert "api-key" not in settings.headers()
    assert settings.secrets() == ["eyJ0eXAiOiJKV1QiSECRET"]


def test_credential_auth_sends_no_fixed_header() -> None:
    settings = azure(password="", use_azure_credential="true", managed_identity_client_id="mi-123")
    assert settings.use_azure_credential and settings.managed_identity_client_id == "mi-123"
    assert "Authorization" not in settings.headers() and "api-key" not in settings.headers()


def test_per_flavor_defaults() -> None:
    settings = azure()
    assert settings.is_azure and settings.files_need_processing
    assert settings.multipart_threshold == AZURE_MULTIPART_THRESHOLD == 100 * MiB
    assert azure(multipart_threshold=5 * MiB).multipart_threshold == 5 * MiB
    openai = parse_settings("o", host=None, password="sk-x", extra={})
    assert not openai.is_azure and not openai.files_need_processing
    assert openai.multipart_threshold == 512 * MiB
    assert openai.query({"a": 1}) == {"a": 1}


def test_secrets_never_in_repr() -> None:
    settings = azure(password=None, azure_ad_token="tok-SECRET-value")
    assert "SECRET" not in repr(settings)
    assert "SECRET" not in repr(azure())


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"host": None}, "host", "resource endpoint"),
        ({"host": "ftp://x"}, "host", "http or https"),
        ({"password": None}, "password", "azure_ad_token"),
        ({"azure_ad_token": "t"}, "azure_ad_token", "only one way"),
        ({"password": None, "azure_ad_token": "t", "use_azure_credential": True}, "use_azure_credential", "only one"),
        ({"managed_identity_client_id": "x"}, "managed_identity_client_id", "use_azure_credential"),
        ({"use_azure_credential": "maybe", "password": None}, "use_azure_credential", "true or false"),
        ({"api_version": "2024-10-21&x=1"}, "api_version", "API version"),
    ],
)
def test_config_errors_name_the_field(kwargs: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(OpenAIFilesConfigError) as info:
        azure(**kwargs)
    message = str(info.value)
    assert f"'{field}'" in message and words in message and "'az'" in message
    assert KEY not in message


def test_unknown_flavor_and_azure_extras_on_openai() -> None:
    with pytest.raises(OpenAIFilesConfigError, match=r"'flavor'.*openai, azure"):
        parse_settings("c", host=None, password="sk-x", extra={"flavor": "gcp"})
    with pytest.raises(OpenAIFilesConfigError, match="'api_version' is only used when the extra 'flavor' is 'azure'"):
        parse_settings("c", host=None, password="sk-x", extra={"api_version": "2024-10-21"})
    # Empty values (a form's blank fields) are fine.
    parse_settings("c", host=None, password="sk-x", extra={"api_version": "", "use_azure_credential": False})


# -- Azure's error shapes become the same OpenAIFilesError ----------------------------------------------


def test_gateway_error_shapes() -> None:
    key_body = (
        b'{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}'
    )
    assert error_fields(key_body) == {
        "code": "401",
        "message": "Access denied due to invalid subscription key or wrong API endpoint.",
    }
    token_body = (
        b'{"statusCode": 401, "message": "Unauthorized. Access token is missing, invalid, audience is incorrect"}'
    )
    assert error_fields(token_body) == {
        "code": "401",
        "message": "Unauthorized. Access token is missing, invalid, audience is incorrect",
    }
    assert error_fields(b'{"error": "plain"}') == {"message": "plain"}
    assert error_fields(b"[]") == {} and error_fields(b"<html>") == {}


@pytest.mark.parametrize(
    ("status", "body", "code", "message"),
    [
        (404, {"error": {"code": "404", "message": "Resource not found"}}, "404", "Resource not found"),
        (
            400,
            {"error": {"code": "BadRequest", "message": "API version not supported"}},
            "BadRequest",
            "API version not supported",
        ),
        (
            401,
            {"statusCode": 401, "message": "Unauthorized. Access token is missing"},
            "401",
            "Access token is missing",
        ),
    ],
)
def test_classify_azure_answers(status: int, body: dict[str, Any], code: str, message: str) -> None:
    from airflow_openai_files.exceptions import settle

    err = settle(classify(status, {"apim-request-id": "apim-1"}, json.dumps(body).encode(), what="Listing files"))
    assert isinstance(err, OpenAIFilesRequestError)  # fails the task on its first try
    assert err.http_status == status and err.code == code and err.request_id == "apim-1"
    assert message in str(err) and "apim-1" in str(err)


def test_azure_429_and_5xx_are_retried_with_their_hints() -> None:
    from airflow_openai_files.client.retry import should_retry

    err = classify(
        429,
        {"retry-after-ms": "1500", "x-ms-request-id": "ms-9"},
        b'{"error":{"code":"429","message":"Rate limit"}}',
        what="x",
    )
    assert should_retry(err) and err.retry_after == 1.5 and err.request_id == "ms-9"
    assert should_retry(classify(503, {}, b"", what="x"))
    assert isinstance(classify(500, {}, b"", what="x"), OpenAIFilesError)


def test_request_id_precedence() -> None:
    import httpx
    from requests.structures import CaseInsensitiveDict

    assert request_id_from(httpx.Headers({"Apim-Request-Id": "a", "x-ms-request-id": "m"})) == "a"
    assert request_id_from(CaseInsensitiveDict({"X-Request-Id": "r", "apim-request-id": "a"})) == "r"
    assert request_id_from({"x-ms-request-id": "m"}) == "m"
    assert request_id_from({}) is None


# -- the form --------------------------------------------------------------------------------------------


def test_form_shows_the_azure_fields_with_help() -> None:
    fields = conn_fields()
    assert fields["flavor"]["schema"]["enum"][:2] == ["openai", "azure"]
    for name in ("api_version", "azure_ad_token", "use_azure_credential", "managed_identity_client_id"):
        assert fields[name]["label"] and "Azure" in fields[name]["description"]
    assert fields["azure_ad_token"]["schema"]["format"] == "password"  # masked by Airflow's form
    assert "2024-10-21" in fields["api_version"]["description"]


@pytest.mark.skipif(not AIRFLOW_V_3_2_PLUS, reason="Airflow 3.1 has no declarative connection form")
def test_provider_registers_the_azure_fields_as_widgets() -> None:
    from airflow.providers_manager import ProvidersManager

    widgets = ProvidersManager().connection_form_widgets
    assert "extra__openai_files__flavor" in widgets
    token = widgets["extra__openai_files__azure_ad_token"]
    assert token.is_sensitive
