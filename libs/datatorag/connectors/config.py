"""The per-tenant sources file (YAML), validated with pydantic.

```yaml
tenants:
  acme:
    sources:
      - id: hr-ftp
        type: ftps                    # folder | ftp | ftps | sftp | s3 | workday | rippling
        interval_s: 900
        include: ["*.pdf", "*.docx"]
        exclude: ["tmp/*"]
        host: ftp.acme.example
        username: datatorag
        password: env:ACME_FTP_PASSWORD          # env:VAR | file:/path | secretsmanager:arn[#key]
        root: /outbound
        audience: [everyone]                      # who of the tenant sees its documents
        audience_rules:                           # ordered; the first matching glob wins
          - {path: "managers/**", groups: [managers, hr]}
          - {path: "*.salary.pdf", groups: [hr]}
```

Every credential field takes only a reference (``datatorag.connectors.secrets``); a literal secret
is a validation error, so secrets never sit in the file and never reach logs. Unknown keys are
errors too (a typo must not silently fall back to a default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

from datatorag.connectors.secrets import check_ref
from datatorag.domain.audience import normalise_groups

SecretRef = Annotated[str, AfterValidator(check_ref)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
# a list of group names: validated, unique, sorted (``datatorag.domain.audience``)
GroupList = Annotated[list[str], AfterValidator(lambda v: list(normalise_groups(v)))]


class AudienceRule(BaseModel):
    """Documents whose source-relative path matches ``path`` (the include/exclude glob syntax:
    ``*`` crosses ``/``, a pattern without ``/`` also matches the base name) are seen by
    ``groups``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, max_length=1024)
    groups: GroupList


class ConfigError(ValueError):
    """The sources file is missing, not YAML, or invalid; the message says where."""


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    enabled: bool = True
    interval_s: float = Field(900.0, ge=5, description="seconds between syncs")
    jitter_s: float | None = Field(None, ge=0, description="default: 10% of interval_s")
    include: list[str] = Field(default_factory=lambda: ["*"])
    exclude: list[str] = Field(default_factory=list)
    max_concurrency: int | None = Field(
        None, ge=1, le=64, description="documents in flight at once (default: per source type)"
    )
    delete_grace_s: float = Field(3600.0, ge=0, description="missing this long = deleted")
    audience: GroupList | None = Field(
        None, description="who of the tenant sees the source's documents (default: everyone)"
    )
    audience_rules: list[AudienceRule] = Field(
        default_factory=list, description="path globs -> groups; the first match wins"
    )


class _RecordAudience(BaseModel):
    """The audience fields of an HR-API record (Workday, Rippling), when its API has them."""

    audience_field: str | None = Field(
        None, min_length=1, description="a record field naming the groups that may see it"
    )
    confidential_field: str | None = Field(
        None, min_length=1, description="a flag field: true restricts to confidential_audience"
    )
    confidential_audience: GroupList | None = None

    @model_validator(mode="after")
    def _confidential(self) -> _RecordAudience:
        if (self.confidential_field is None) != (self.confidential_audience is None):
            raise ValueError("give confidential_field and confidential_audience together")
        return self


class FolderSourceConfig(_Source):
    type: Literal["folder"]
    path: Path
    follow_symlinks: bool = False
    upload_audience: bool = Field(
        False, description="read each file's audience from the upload API's sidecar (uploads)"
    )


class _Network(_Source):
    host: str = Field(min_length=1)
    connect_timeout_s: float = Field(15.0, gt=0)
    retries: int = Field(4, ge=1, le=20)
    max_connections: int = Field(4, ge=1, le=64, description="per server")
    root: str = "/"


class FtpSourceConfig(_Network):
    type: Literal["ftp", "ftps"]
    port: int | None = Field(None, ge=1, le=65535)
    username: str = "anonymous"
    password: SecretRef | None = None
    tls_mode: Literal["explicit", "implicit"] = "explicit"  # ftps only
    verify_tls: bool = True
    ca_file: Path | None = None
    passive: bool = True
    list_command: Literal["auto", "MLSD", "LIST"] = "auto"
    timeout_s: float = Field(60.0, gt=0, description="socket read timeout")

    @field_validator("passive")
    @classmethod
    def _passive_only(cls, value: bool) -> bool:
        if not value:
            raise ValueError("active-mode FTP is not supported (it cannot cross NAT/Kubernetes)")
        return value


class SftpSourceConfig(_Network):
    type: Literal["sftp"]
    port: int = Field(22, ge=1, le=65535)
    username: str = Field(min_length=1)
    password: SecretRef | None = None
    private_key: SecretRef | None = None
    private_key_passphrase: SecretRef | None = None
    known_hosts: Path | None = None
    host_key_checking: bool = True

    @model_validator(mode="after")
    def _auth(self) -> SftpSourceConfig:
        if self.password is None and self.private_key is None:
            raise ValueError("sftp needs password or private_key (a reference)")
        return self


class S3SourceConfig(_Source):
    type: Literal["s3"]
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: SecretRef | None = None
    secret_access_key: SecretRef | None = None
    upload_audience: bool = Field(
        False, description="read each object's audience from the upload API's sidecar (uploads)"
    )

    @model_validator(mode="after")
    def _keys(self) -> S3SourceConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        return self


class WorkdayReport(_RecordAudience):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Identifier
    # path under the host: /ccx/service/customreport2/{tenant}/{owner}/{report}
    path: str = Field(pattern=r"^/")
    params: dict[str, str] = Field(default_factory=dict)
    id_field: str = "Employee_ID"
    title_field: str | None = None


class WorkdayResource(_RecordAudience):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Identifier
    path: str = Field(pattern=r"^/")  # e.g. /ccx/api/staffing/v6/{tenant}/workers
    id_field: str = "id"
    title_field: str | None = "descriptor"


class WorkdaySourceConfig(_Source):
    type: Literal["workday"]
    base_url: HttpUrl
    tenant_name: str = Field(min_length=1)
    token_url: HttpUrl | None = None  # default {base_url}/ccx/oauth2/{tenant_name}/token
    client_id: str = Field(min_length=1)
    client_secret: SecretRef
    refresh_token: SecretRef
    reports: list[WorkdayReport] = Field(default_factory=list)
    resources: list[WorkdayResource] = Field(default_factory=list)
    page_size: int = Field(100, ge=1, le=100)
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(5, ge=1, le=20)

    @model_validator(mode="after")
    def _something(self) -> WorkdaySourceConfig:
        if not self.reports and not self.resources:
            raise ValueError("workday needs at least one report or resource")
        return self


class RipplingSourceConfig(_Source, _RecordAudience):
    type: Literal["rippling"]
    base_url: HttpUrl = HttpUrl("https://rest.ripplingapis.com")
    token: SecretRef
    resources: list[str] = Field(default_factory=lambda: ["workers"], min_length=1)
    title_fields: list[str] = Field(default_factory=lambda: ["display_name", "name", "title"])
    page_size: int = Field(100, ge=1, le=100)
    api_version: str | None = None  # Rippling-Api-Version header (YYYY-MM-DD)
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(5, ge=1, le=20)


SourceConfig = Annotated[
    FolderSourceConfig
    | FtpSourceConfig
    | SftpSourceConfig
    | S3SourceConfig
    | WorkdaySourceConfig
    | RipplingSourceConfig,
    Field(discriminator="type"),
]


class TenantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: list[SourceConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> TenantConfig:
        seen: set[str] = set()
        for source in self.sources:
            if source.id in seen:
                raise ValueError(f"source id {source.id!r} is used twice")
            seen.add(source.id)
        return self


class SourcesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenants: dict[Identifier, TenantConfig] = Field(default_factory=dict)

    def items(self) -> list[tuple[str, SourceConfig]]:
        return [(t, s) for t, cfg in self.tenants.items() for s in cfg.sources]

    def find(self, tenant: str, source_id: str) -> SourceConfig | None:
        cfg = self.tenants.get(tenant)
        return next((s for s in cfg.sources if s.id == source_id), None) if cfg else None


def parse_sources(text: str, *, origin: str = "<sources>") -> SourcesConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping with 'tenants', got {type(data).__name__}")
    try:
        return SourcesConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigError(
            f"{origin}: invalid sources configuration:\n" + "\n".join(lines)
        ) from None


def load_sources(path: str | Path) -> SourcesConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read sources file {p}: {exc.strerror}") from exc
    return parse_sources(text, origin=str(p))
