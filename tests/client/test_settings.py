"""The openai_files connection: fields, defaults, headers, and clear errors before any request."""

from __future__ import annotations

import json

import pytest

from airflow_openai_files import __version__
from airflow_openai_files.client.settings import DEFAULT_BASE_URL, parse_settings
from airflow_openai_files.exceptions import OpenAIFilesConfigError
from airflow_openai_files.hooks import OpenAIFilesHook
from tests.conftest import API_KEY, set_connection


def settings(host: str | None = "https://api.example.com/v1", password: str | None = "sk-x1234", **extra: object):
    return parse_settings("my_conn", host=host, password=password, extra=dict(extra))


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (None, DEFAULT_BASE_URL),
        ("", DEFAULT_BASE_URL),
        ("api.openai.com/v1", "https://api.openai.com/v1"),
        ("http://127.0.0.1:8089/v1/", "http://127.0.0.1:8089/v1"),
        ("https://proxy.internal/openai/v1", "https://proxy.internal/openai/v1"),
    ],
)
def test_base_url(host: str | None, expected: str) -> None:
    assert settings(host=host).base_url == expected


def test_port_field_is_kept_when_host_has_none() -> None:
    assert parse_settings("c", host="127.0.0.1", password="k", extra={}, port=8089).base_url == "https://127.0.0.1:8089"


def test_uri_form_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """A URI splits the base URL into host, port and schema; the hook puts it back together."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_URI_CONN", "openai-files://:sk-uri-key@api.example.com:8443/v1?project=proj-7&max_retries=2"
    )
    hook = OpenAIFilesHook("uri_conn")
    assert hook.settings.base_url == "https://api.example.com:8443/v1"
    assert (hook.settings.project, hook.settings.max_retries, hook.settings.api_key) == ("proj-7", 2, "sk-uri-key")


def test_defaults_and_extras() -> None:
    s = settings(
        organization="org-1", project="proj-2", timeout="30", connect_timeout=2, max_retries="3", verify="false"
    )
    assert (s.organization, s.project, s.timeout, s.connect_timeout, s.max_retries, s.verify) == (
        "org-1",
        "proj-2",
        30.0,
        2.0,
        3,
        False,
    )
    plain = settings()
    assert (plain.timeout, plain.max_retries, plain.verify) == (600.0, 5, True)
    assert settings(verify="/etc/ssl/ca.pem").verify == "/etc/ssl/ca.pem"


def test_headers() -> None:
    headers = settings(organization="org-1", project="proj-2").headers()
    assert headers["Authorization"] == "Bearer sk-x1234"
    assert headers["OpenAI-Organization"] == "org-1"
    assert headers["OpenAI-Project"] == "proj-2"
    assert headers["User-Agent"].startswith(f"airflow-provider-openai-files/{__version__}")
    assert "OpenAI-Organization" not in settings().headers()


def test_key_not_in_repr() -> None:
    assert "sk-x1234" not in repr(settings())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"password": None}, "password"),
        ({"password": "  "}, "password"),
        ({"host": "ftp://example.com"}, "host"),
        ({"host": "https://exa mple.com"}, "host"),
        ({"host": "https://"}, "host"),
        ({"host": "https://example.com:99999"}, "host"),
        ({"host": "https://example.com/v1?x=1"}, "host"),
        ({"timeout": "soon"}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"connect_timeout": "x"}, "connect_timeout"),
        ({"max_retries": "many"}, "max_retries"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 2.5}, "max_retries"),
    ],
)
def test_bad_fields_name_connection_and_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(OpenAIFilesConfigError) as info:
        settings(**kwargs)  # type: ignore[arg-type]
    assert "'my_conn'" in str(info.value)
    assert f"'{field}'" in str(info.value)


def test_hook_reads_connection_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "custom", extra={"max_retries": 2, "project": "p"})
    hook = OpenAIFilesHook(openai_conn_id="custom")
    assert hook.settings.project == "p"
    assert hook.max_retries == 2
    assert API_KEY not in repr(hook)


def test_hook_argument_overrides_connection_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, extra={"max_retries": 2})
    hook = OpenAIFilesHook(max_retries=0)
    hook.settings  # noqa: B018
    assert hook.max_retries == 0


def test_missing_connection_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NOT_THERE", raising=False)
    with pytest.raises(OpenAIFilesConfigError, match="'not_there' was not found"):
        OpenAIFilesHook("not_there").get_file("file-abc")


# -- issue 12: the connection form ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"verify": True}, True),
        ({"verify": False, "ca_bundle": "/etc/ssl/ca.pem"}, False),  # the switch wins
        ({"ca_bundle": "/etc/ssl/ca.pem"}, "/etc/ssl/ca.pem"),
        ({"verify": True, "ca_bundle": " /etc/ssl/ca.pem "}, "/etc/ssl/ca.pem"),
        ({"verify": "off"}, False),  # the former string values keep working
        ({"verify": "/etc/ssl/old.pem"}, "/etc/ssl/old.pem"),
        ({"verify": "corp-ca.pem"}, "corp-ca.pem"),
    ],
)
def test_verify_switch_and_ca_bundle(extra: dict[str, object], expected: object) -> None:
    assert settings(**extra).verify == expected


@pytest.mark.parametrize("typo", ["flase", "ture", "nope"])
def test_a_verify_typo_is_not_taken_for_a_ca_path(typo: str) -> None:
    with pytest.raises(OpenAIFilesConfigError, match=r"'verify'.*ca_bundle"):
        settings(verify=typo)


def test_base_url_errors_carry_the_hint() -> None:
    with pytest.raises(OpenAIFilesConfigError, match=r"scheme.*/v1|/v1.*scheme|with scheme and the /v1 path"):
        settings(host="ftp://api.example.com/v1")


def test_form_is_declared_once_with_minimums() -> None:
    from airflow_openai_files.provider_info import get_provider_info

    (conn,) = get_provider_info()["connection-types"]
    behaviour = OpenAIFilesHook.get_ui_field_behaviour()
    provider = conn["ui-field-behaviour"]
    assert behaviour == {
        "hidden_fields": provider["hidden-fields"],
        "relabeling": provider["relabeling"],
        "placeholders": provider["placeholders"],
    }
    fields = conn["conn-fields"]
    assert fields["verify"]["schema"]["type"] == ["boolean", "null"]
    assert "ca_bundle" in fields
    for name in ("timeout", "connect_timeout", "multipart_threshold", "max_retries"):
        assert "minimum" in fields[name]["schema"], name
    assert fields["max_retries"]["schema"]["minimum"] == 0


def test_connection_test_names_the_field_at_fault_not_the_connection_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """The UI's test button uses a generated connection id; the answer names the form's field instead."""
    from airflow_openai_files.hooks import OpenAIFilesHook

    conn = {"conn_type": "openai_files", "password": "sk-x", "extra": {"timeout": "soon"}}
    monkeypatch.setenv("AIRFLOW_CONN_TMP_8F3A2C", json.dumps(conn))
    ok, message = OpenAIFilesHook("tmp_8f3a2c").test_connection()
    assert not ok
    assert message.startswith("Field 'timeout'")
    assert "tmp_8f3a2c" not in message
