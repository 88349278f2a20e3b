"""Sources file: validation, credential references only, secrets never in repr/logs, building."""

from __future__ import annotations

from pathlib import Path

import pytest

from datatorag.connectors.builder import BrokenSource, build_schedules
from datatorag.connectors.config import ConfigError, load_sources, parse_sources
from datatorag.connectors.folder import FolderSource
from datatorag.connectors.ftp import FtpSource
from datatorag.connectors.rippling import RipplingSource
from datatorag.connectors.secrets import SecretError, SecretResolver
from datatorag.connectors.sftp import SftpSource
from datatorag.connectors.workday import WorkdaySource

GOOD = """
tenants:
  acme:
    sources:
      - {id: docs, type: folder, path: /srv/docs, interval_s: 60, include: ["*.pdf"]}
      - id: hr-ftp
        type: ftps
        host: ftp.acme.example
        username: feed
        password: env:ACME_FTP_PASSWORD
        root: /outbound
        delete_grace_s: 0
      - id: hr-sftp
        type: sftp
        host: sftp.acme.example
        username: feed
        private_key: file:KEYFILE
        known_hosts: /etc/datatorag/known_hosts
      - id: wd
        type: workday
        base_url: https://wd2-impl-services1.workday.com
        tenant_name: acme
        client_id: client-1
        client_secret: env:WD_SECRET
        refresh_token: file:REFRESH
        resources: [{name: workers, path: "/ccx/api/v1/{tenant}/workers"}]
  globex:
    sources:
      - {id: rp, type: rippling, token: "env:RP_TOKEN", resources: [workers, departments]}
"""


def test_parse_good_file(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(GOOD.replace("KEYFILE", "/k").replace("REFRESH", "/r"))
    cfg = load_sources(path)
    assert [(t, s.id, s.type) for t, s in cfg.items()] == [
        ("acme", "docs", "folder"),
        ("acme", "hr-ftp", "ftps"),
        ("acme", "hr-sftp", "sftp"),
        ("acme", "wd", "workday"),
        ("globex", "rp", "rippling"),
    ]
    ftp = cfg.find("acme", "hr-ftp")
    assert ftp is not None and ftp.password == "env:ACME_FTP_PASSWORD" and ftp.delete_grace_s == 0


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("{id: x, type: ftp, host: h, password: hunter2}", "credentials must be references"),
        ("{id: x, type: ftp, host: h, pasword: env:X}", "Extra inputs are not permitted"),
        ("{id: x, type: gopher}", "does not match any of the expected tags"),
        ("{id: x, type: ftp, host: h, passive: false}", "active-mode FTP is not supported"),
        ("{id: x, type: sftp, host: h, username: u}", "needs password or private_key"),
        ("{id: x, type: ftp, host: h, password: 'file:relative/path'}", "absolute path"),
        ("{id: 'bad id', type: folder, path: /x}", "String should match pattern"),
        ("{id: x, type: folder, path: /x, interval_s: 1}", "greater than or equal to 5"),
    ],
)
def test_invalid_sources_say_where_and_why(snippet: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_sources(f"tenants: {{acme: {{sources: [{snippet}]}}}}")
    text = str(info.value)
    assert "tenants.acme.sources.0" in text and message in text
    assert "hunter2" not in text  # a literal secret is never echoed back


def test_duplicate_ids_and_bad_yaml() -> None:
    with pytest.raises(ConfigError, match="used twice"):
        parse_sources(
            "tenants: {a: {sources: [{id: x, type: folder, path: /a}, "
            "{id: x, type: folder, path: /b}]}}"
        )
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_sources("tenants: [unclosed")
    with pytest.raises(ConfigError, match="cannot read sources file"):
        load_sources("/nonexistent/sources.yaml")


async def test_secret_references(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-a-file\n")
    resolver = SecretResolver(environ={"FTP_PW": "from-env"})
    assert (await resolver.resolve("env:FTP_PW")).get_secret_value() == "from-env"
    value = await resolver.resolve(f"file:{secret_file}")
    assert value.get_secret_value() == "from-a-file"
    assert "from-a-file" not in repr(value) and "from-a-file" not in str(value)
    with pytest.raises(SecretError, match=r"MISSING.*not set"):
        await resolver.resolve("env:MISSING")
    with pytest.raises(SecretError, match="cannot read"):
        await resolver.resolve(f"file:{tmp_path}/nope")


async def test_build_schedules(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = tmp_path / "id_ed25519"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n")
    refresh = tmp_path / "refresh"
    refresh.write_text("refresh-token-value")
    cfg = parse_sources(GOOD.replace("KEYFILE", str(key)).replace("REFRESH", str(refresh)))
    resolver = SecretResolver(
        environ={"ACME_FTP_PASSWORD": "ftp-pass-value", "WD_SECRET": "wd-secret-value"}
    )  # RP_TOKEN deliberately missing
    specs = await build_schedules(cfg, resolver)
    by_id = {s.source.id: s for s in specs}
    assert isinstance(by_id["docs"].source, FolderSource) and by_id["docs"].interval_s == 60
    ftp = by_id["hr-ftp"].source
    assert isinstance(ftp, FtpSource) and ftp.settings.tls == "explicit"
    assert ftp.settings.password is not None
    assert ftp.settings.password.get_secret_value() == "ftp-pass-value"
    assert "ftp-pass-value" not in repr(ftp.settings)
    assert by_id["hr-ftp"].options is not None and by_id["hr-ftp"].options.delete_grace_s == 0
    assert isinstance(by_id["hr-sftp"].source, SftpSource)
    wd = by_id["wd"].source
    assert isinstance(wd, WorkdaySource)
    assert wd.token_url == "https://wd2-impl-services1.workday.com/ccx/oauth2/acme/token"
    assert wd.settings.expand(wd.settings.resources[0].path) == "/ccx/api/v1/acme/workers"
    broken = by_id["rp"].source
    assert isinstance(broken, BrokenSource) and broken.tenant == "globex"
    assert broken.code == "secret_unresolved" and "RP_TOKEN" in broken.reason
    with pytest.raises(Exception, match="RP_TOKEN"):
        async for _ in broken.list():
            pass
    for spec in specs:
        await spec.source.close()
    assert not isinstance(by_id["rp"].source, RipplingSource)
