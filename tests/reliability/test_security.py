"""
Security: the key never leaks, Airflow's masker knows it, TLS is verified unless explicitly turned
off, ids cannot reach another endpoint, downloads are written through an exclusive temporary file,
and the emulator serves nothing outside its data directory.

(Every test of this suite also runs under the autouse guard in conftest.py: no log record at DEBUG
and nothing on stdout/stderr may contain the key.)
"""

from __future__ import annotations

import http.client
import logging
import os
import pickle
import stat
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_openai_files.client.settings import parse_settings
from airflow_openai_files.emulator import Emulator
from airflow_openai_files.exceptions import OpenAIFilesConfigError, OpenAIFilesError, OpenAIFilesValidationError
from airflow_openai_files.hooks import OpenAIFilesHook, validate_file_id
from tests.reliability.helpers import SECRET_KEY, FrontDoor, assert_no_key, part_files, stored, tune, v1_log
from tests.support.connections import free_port, set_connection
from tests.support.files import batch_lines, sha256
from tests.support.task_helpers import make_context
from tests.support.tls import self_signed_certificate, tls_server_context

# -- the key ---------------------------------------------------------------------------------------------


def _everything_about(err: BaseException) -> list[Any]:
    """The forms an error takes on its way to a log, the UI or another process."""
    return [
        err,
        "".join(traceback.format_exception(err)),
        pickle.dumps(err).decode("latin-1"),
        getattr(err, "__dict__", {}),
        err.__cause__,
        err.__context__,
    ]


def test_key_never_leaks_through_a_failing_and_succeeding_pipeline(
    emu: Emulator,
    seed: Callable[..., dict[str, Any]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_openai_files.operators import (
        OpenAIDeleteFileOperator,
        OpenAIDownloadFileOperator,
        OpenAIFilesCleanupOperator,
        OpenAIUploadFileOperator,
    )

    source = tmp_path / "report.jsonl"
    source.write_bytes(batch_lines(100))  # a batch input: a purpose the service lets a client download
    ctx = make_context()
    upload = OpenAIUploadFileOperator(
        task_id="upload",
        file_path=str(tmp_path / "{{ run_id }}.jsonl"),
        purpose="batch",
        filename="{{ run_id }}.jsonl",
    )
    upload.render_template_fields(ctx)
    (tmp_path / f"{ctx['run_id']}.jsonl").write_bytes(source.read_bytes())
    tune(upload.hook)
    emu.add_fault(method="POST", path="/v1/files", status=503)
    emu.add_fault(method="POST", path="/v1/files", action="close_after_body")
    created = upload.execute(ctx)
    download = OpenAIDownloadFileOperator(
        task_id="download", file_id="{{ ti.xcom_pull('upload')['id'] }}", destination=str(tmp_path / "out.jsonl")
    )
    download.file_id = created["id"]  # what the rendered template would give
    tune(download.hook)
    emu.add_fault(method="GET", path="/v1/files/*/content", action="truncate_body")
    path = download.execute(ctx)
    delete = OpenAIDeleteFileOperator(task_id="delete", file_id=created["id"])
    cleanup = OpenAIFilesCleanupOperator(task_id="cleanup", purpose="batch", dry_run=True)
    results: list[Any] = [created, path, delete.execute(ctx), cleanup.execute(ctx)]

    # failures: a wrong key (the server's message quotes a masked form of what it got), an
    # exhausted budget, a refused connection, and a bad id
    errors: list[BaseException] = []
    set_connection(monkeypatch, "wrong_key", host=emu.base_url, password=SECRET_KEY + "x", extra={"max_retries": 1})
    set_connection(
        monkeypatch,
        "closed_port",
        host=f"http://127.0.0.1:{free_port()}/v1",
        password=SECRET_KEY,
        extra={"max_retries": 1},
    )
    for conn_id, call in [
        ("wrong_key", lambda h: h.get_file("file-abc")),
        (
            "openai_files_default",
            lambda h: (emu.add_fault(method="GET", path="/v1/files", status=500, times=9), list(h.list_files())),
        ),
        ("closed_port", lambda h: h.delete_file("file-abc")),
        ("openai_files_default", lambda h: h.download_file("file-abc/../x", tmp_path / "x")),
    ]:
        hook = OpenAIFilesHook(openai_conn_id=conn_id)
        tune(hook)
        with pytest.raises(OpenAIFilesError) as info:
            call(hook)
        errors.append(info.value)
        _ok, message = hook.test_connection()
        results.append(message)
        assert_no_key(hook, hook.settings)
    assert errors[0].http_status == 401 and "Incorrect API key" in str(errors[0])

    for err in errors:
        assert_no_key(*_everything_about(err))
    assert_no_key(*results)  # return values: what goes to XCom
    for operator in (upload, download, delete, cleanup):
        rendered = {name: getattr(operator, name) for name in operator.template_fields}
        assert_no_key(rendered, operator, operator.hook)
    # The guard in conftest.py is only worth something if it really sees the logs: stdlib records at
    # DEBUG (urllib3 logs every request line) and the task logger, which Airflow renders to stdout.
    assert any(r.levelno == logging.DEBUG and r.name.startswith("urllib3") for r in caplog.records)
    out, err = capfd.readouterr()
    assert "retrying in" in out and "Incorrect API key" in out + err + str(errors[0])
    assert SECRET_KEY not in out + err
    print(out, end="")


def test_secrets_masker_is_given_the_key(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.sdk.log

    given: list[Any] = []
    real = airflow.sdk.log.mask_secret
    monkeypatch.setattr(
        airflow.sdk.log, "mask_secret", lambda secret, name=None: (given.append(secret), real(secret, name))
    )

    hook = OpenAIFilesHook()
    hook.get_conn()

    assert SECRET_KEY in given
    redact = getattr(airflow.sdk.log, "redact", None)
    if redact is None:  # Airflow 3.1: the masker's module, not re-exported by airflow.sdk.log
        from airflow.sdk._shared.secrets_masker import redact
    redacted = redact(f"Authorization: Bearer {SECRET_KEY}")
    assert SECRET_KEY not in str(redacted) and "***" in str(redacted)


# -- TLS ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("verify", "expected"),
    [
        (None, True),
        ("", True),
        ("true", True),
        (True, True),
        ("false", False),
        (False, False),
        ("0", False),
        ("/etc/ssl/my-ca.pem", "/etc/ssl/my-ca.pem"),
    ],
)
def test_tls_verification_is_on_unless_the_connection_turns_it_off(
    monkeypatch: pytest.MonkeyPatch, verify: Any, expected: Any
) -> None:
    extra = {} if verify is None else {"verify": verify}
    set_connection(monkeypatch, "tls_conn", host="https://api.example.com/v1", password=SECRET_KEY, extra=extra)
    assert OpenAIFilesHook(openai_conn_id="tls_conn").get_conn().verify == expected


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (its own CA bundle)."""
    return self_signed_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_door(emu: Emulator, certificate: tuple[Path, Path]) -> Any:
    door = FrontDoor(emu.port, tls=tls_server_context(certificate))
    door.forward()
    yield door
    door.close()


@pytest.mark.parametrize("verify", [None, "true"])
def test_untrusted_certificate_is_refused_and_not_retried(
    emu: Emulator, tls_door: FrontDoor, monkeypatch: pytest.MonkeyPatch, verify: str | None
) -> None:
    extra = {} if verify is None else {"verify": verify}
    set_connection(monkeypatch, "tls_conn", host=tls_door.base_url, password=SECRET_KEY, extra=extra)
    hook = OpenAIFilesHook(openai_conn_id="tls_conn")
    waits = tune(hook)

    with pytest.raises(OpenAIFilesError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed") as info:
        hook.get_file("file-abc")

    assert waits.seconds == [], "a certificate problem is not retried"
    assert v1_log(emu) == [], "nothing reached the server"
    assert_no_key(*_everything_about(info.value))


@pytest.mark.parametrize("trust", ["ca-bundle", "verify-off"])
def test_trusted_or_explicitly_unverified_tls_works(
    emu: Emulator,
    tls_door: FrontDoor,
    certificate: tuple[Path, Path],
    seed: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    trust: str,
) -> None:
    import certifi

    # Workers often export these (this machine does): the connection's explicit setting must still win.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    target = seed()
    verify = str(certificate[0]) if trust == "ca-bundle" else "false"
    set_connection(monkeypatch, "tls_conn", host=tls_door.base_url, password=SECRET_KEY, extra={"verify": verify})
    hook = OpenAIFilesHook(openai_conn_id="tls_conn")
    tune(hook)

    assert hook.get_conn().verify == (verify if trust == "ca-bundle" else False)
    assert hook.get_file(target["id"])["id"] == target["id"]
    assert tls_door.tls_failures == []


@pytest.mark.parametrize(
    "host",
    [
        "ftp://127.0.0.1/v1",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
        "ws://127.0.0.1/v1",
        "javascript:alert(1)",
        "http://user:pw@127.0.0.1/v1",
        "http://127.0.0.1/v1?x=1",
    ],
)
def test_base_url_must_be_plain_http_or_https(host: str) -> None:
    with pytest.raises(OpenAIFilesConfigError, match="'host'"):
        parse_settings("c", host=host, password=SECRET_KEY, extra={})


def test_host_without_scheme_gets_https() -> None:
    assert parse_settings("c", host="api.example.com/v1", password=SECRET_KEY, extra={}).base_url.startswith("https://")


# -- ids cannot reach another endpoint ---------------------------------------------------------------------

HOSTILE_CHARS = [chr(c) for c in range(0, 128) if not (chr(c).isascii() and (chr(c).isalnum() or chr(c) in "-_"))]
HOSTILE_IDS = [f"file-a{c}b" for c in HOSTILE_CHARS] + [
    "file-\uff41",  # full-width letter a
    "file-a\u200bb",  # zero-width space
    "file-a..b",
    "-file",
    "_file",
    "file-abc/content",
    "../uploads/upload_abc/cancel",
    "file-abc%2F..%2F..%2Fuploads",
    "file-abc\r\nHost: evil",
    None,
    42,
    b"file-abc",
]


def test_no_hostile_id_reaches_a_url(emu: Emulator, tmp_path: Path) -> None:
    hook = OpenAIFilesHook()
    tune(hook)
    for bad in HOSTILE_IDS:
        for call in (hook.get_file, hook.delete_file, lambda i: hook.download_file(i, tmp_path / "x")):
            with pytest.raises(OpenAIFilesValidationError):
                call(bad)
    assert v1_log(emu) == []
    assert list(tmp_path.iterdir()) == []


def test_valid_ids_reach_only_their_own_paths(
    emu: Emulator, seed: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    target = seed()
    mark = len(emu.request_log())
    hook = OpenAIFilesHook()
    tune(hook)
    hook.get_file(target["id"])
    hook.download_file(target["id"], tmp_path / "copy.bin")
    hook.delete_file(target["id"])
    assert validate_file_id("file-Abc_09-x") == "file-Abc_09-x"
    assert {path for _, path, _ in v1_log(emu, mark)} == {
        f"/v1/files/{target['id']}",
        f"/v1/files/{target['id']}/content",
    }


# -- downloads: exclusive temporary file beside the destination, then renamed -----------------------------


def test_download_goes_through_an_exclusive_temp_file_beside_the_destination(
    emu: Emulator, seed: Callable[..., dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = seed()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    dest = downloads / "copy.bin"
    opened: list[tuple[str, int, int]] = []
    moved: list[tuple[str, str, str]] = []
    real_open, real_link, real_replace, real_rename = os.open, os.link, os.replace, os.rename

    def spy_open(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
        opened.append((os.fspath(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(src: Any, dst: Any, *args: Any, **kwargs: Any) -> Any:
            moved.append((name, os.fspath(src), os.fspath(dst)))
            return real(src, dst, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "link", spy("link", real_link))
    monkeypatch.setattr(os, "replace", spy("replace", real_replace))
    monkeypatch.setattr(os, "rename", spy("rename", real_rename))
    hook = OpenAIFilesHook()
    tune(hook)

    hook.download_file(target["id"], dest)

    temps = [(p, flags, mode) for p, flags, mode in opened if Path(p).parent == downloads]
    assert len(temps) == 1, opened
    temp, flags, mode = temps[0]
    assert flags & os.O_CREAT and flags & os.O_EXCL, "the temporary file is created exclusively"
    assert mode == 0o600, "and private while it is written"
    assert Path(temp).name.startswith(".copy.bin.") and temp.endswith(".part")
    assert [(src, dst) for _, src, dst in moved if dst == str(dest)] == [(temp, str(dest))], moved
    assert not Path(temp).exists() and part_files(downloads) == []
    assert sha256(dest) == target["sha256"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644 & ~umask


@pytest.mark.parametrize("overwrite", [False, True])
def test_download_never_writes_through_a_symlink(
    emu: Emulator, seed: Callable[..., dict[str, Any]], tmp_path: Path, overwrite: bool
) -> None:
    target = seed()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"must not change")
    planted = downloads / "copy.bin"
    planted.symlink_to(victim)
    dangling = downloads / "copy2.bin"
    dangling.symlink_to(tmp_path / "created-by-attacker.txt")
    hook = OpenAIFilesHook()
    tune(hook)

    for link in (planted, dangling):
        try:
            hook.download_file(target["id"], link, overwrite=overwrite)
        except OpenAIFilesValidationError as err:
            assert not overwrite and ("already exists" in str(err) or "appeared during the download" in str(err))
        else:
            assert overwrite and not link.is_symlink() and sha256(link) == target["sha256"]

    assert victim.read_bytes() == b"must not change"
    assert not (tmp_path / "created-by-attacker.txt").exists()
    assert part_files(downloads) == []


# -- the emulator: path traversal ------------------------------------------------------------------------

TRAVERSALS = [
    "/v1/files/../emulator.sqlite3",
    "/v1/files/../../outside.txt",
    "/v1/files/%2e%2e/emulator.sqlite3",
    "/v1/files/%2e%2e/%2e%2e/outside.txt/content",
    "/v1/files/..%2femulator.sqlite3/content",
    "/v1/files/..%2F..%2Foutside.txt/content",
    "/v1/files/%2e%2e%2f%2e%2e%2foutside.txt/content",
    "/v1/files/..%252f..%252foutside.txt/content",
    "/v1/files/..%5c..%5coutside.txt/content",
    "/v1/files/..\\..\\outside.txt/content",
    "/v1/files/file-abc%2f..%2f..%2f..%2foutside.txt/content",
    "/v1/files/file-abc%00/content",
    "/v1/files/file-abc%0a/content",
    "/v1/files/%2fetc%2fpasswd/content",
    "/v1/files//etc/passwd/content",
    "/v1/files/sentinel/content",
    "/v1/files/emulator.sqlite3/content",
    "/v1/uploads/..%2f..%2foutside.txt/complete",
]


def test_emulator_rejects_path_traversal(emu: Emulator, seed: Callable[..., dict[str, Any]]) -> None:
    seed()
    assert emu.data_dir is not None
    secret = b"OUTSIDE-THE-DATA-DIR 8d1e"
    (emu.data_dir.parent / "outside.txt").write_bytes(secret)
    (emu.data_dir / "files" / "sentinel").write_bytes(secret)
    before = stored(emu)

    for method in ("GET", "DELETE", "POST"):
        for path in TRAVERSALS:
            conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
            try:
                conn.putrequest(method, path, skip_accept_encoding=True)  # sent exactly as written
                conn.putheader("Authorization", f"Bearer {SECRET_KEY}")
                conn.putheader("Content-Length", "0")
                conn.endheaders()
                response = conn.getresponse()
                body = response.read()
            finally:
                conn.close()
            assert response.status in (400, 404, 405), (method, path, response.status, body[:200])
            assert secret not in body and b"SQLite format" not in body, (method, path)

    assert (emu.data_dir.parent / "outside.txt").read_bytes() == secret
    assert (emu.data_dir / "files" / "sentinel").read_bytes() == secret
    assert stored(emu) == before
    for item in emu.files():
        assert emu.content_path(item["id"]).resolve().is_relative_to(emu.data_dir.resolve())
