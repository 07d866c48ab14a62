"""The one settings object.

Every setting is declared here once, with its help text; `docs/configuration.md` lists them all
and a test fails when it misses one. Values come, highest priority first, from `CONTACTHUB_*`
environment variables, then from the TOML file named by `CONTACTHUB_CONFIG` (default
`contacthub.toml` in the working directory, if it exists), then from the defaults below.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DATABASE_SCHEMES = ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg", "postgres")
DEFAULT_SECRET = "change-me-local-only"  # noqa: S105 - refused outside local use, see below


def config_file_path() -> Path:
    """The TOML configuration file: `CONTACTHUB_CONFIG`, else `contacthub.toml` here."""
    return Path(os.environ.get("CONTACTHUB_CONFIG", "contacthub.toml"))


class Settings(BaseSettings):
    """contacthub's configuration."""

    model_config = SettingsConfigDict(env_prefix="CONTACTHUB_", extra="forbid")

    database_url: str = Field(
        default="sqlite:///contacthub.db",
        description="SQLAlchemy URL of the store. Default: a SQLite file in the working "
        "directory. PostgreSQL: `postgresql://user@host:5432/dbname`.",
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="FULL",
        description="SQLite `synchronous` pragma. FULL survives power loss; NORMAL survives a "
        "killed process but may lose the last commits on power loss.",
    )
    enable: bool = Field(
        default=True,
        description="Master switch of the headless API (the seed's `Enable`); off: 404.",
    )
    enable_tracking: bool = Field(
        default=True,
        description="Switch of the tracking API (the seed's `EnableTracking`); off: 404.",
    )
    cors_allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the tracking API from a browser, e.g. "
        '`["https://www.example.com"]`; `["*"]` allows any origin.',
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body the tracking API accepts; larger: 413.",
    )
    max_activities_per_request: int = Field(
        default=1000,
        ge=1,
        description="Most activities one POST /activities may carry; more: 413.",
    )
    writer_max_batch: int = Field(
        default=512,
        ge=1,
        description="Most activity requests committed together in one transaction.",
    )
    writer_max_queue: int = Field(
        default=20_000,
        ge=1,
        description="Activity requests that may wait for the writer; beyond: 503, retry.",
    )
    rollup_interval: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between two runs of the job that counts new activities into the "
        "dashboard's rollups (the dashboard counts the rest live, so it is never stale).",
    )
    group_refresh_interval: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between two runs of the job that keeps dynamic contact groups' "
        "members up to date (a contact enters or leaves a group within about this time).",
    )
    sign_in_max_failures_per_client: int = Field(
        default=10,
        ge=1,
        description="Failed admin sign-ins one client address may make within "
        "`sign_in_client_window`, whatever the accounts; beyond: 429 until the window ends.",
    )
    sign_in_client_window: int = Field(
        default=900,
        ge=1,
        description="Seconds of the per-address sign-in limit's window, from the first failure.",
    )
    secret_key: SecretStr = Field(
        default=SecretStr(DEFAULT_SECRET),
        description="Server secret for signed links (email tracking hashes) and the admin's "
        "sign-in tokens. Required outside local use.",
    )
    previous_secret_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Former values of `secret_key`, still accepted when verifying signed links, "
        "so that emails sent before a rotation keep working. New links use `secret_key`.",
    )
    legacy_hash_salts: list[SecretStr] = Field(
        default_factory=list,
        description="`CMSHashStringSalt` of an old vendor installation: its email hashes "
        "(SHA-256 of address + salt) are accepted on opens, clicks and browser views.",
    )
    smtp_host: str = Field(
        default="127.0.0.1", description="SMTP server that `contacthub issue send` delivers to."
    )
    smtp_port: int = Field(
        default=25, ge=1, le=65535, description="Port of the SMTP server (587 STARTTLS, 465 SSL)."
    )
    smtp_tls: Literal["none", "starttls", "ssl"] = Field(
        default="none",
        description="Transport security: `none` (plain, e.g. a local relay), `starttls` "
        "(upgrade after connecting, usually port 587) or `ssl` (implicit TLS, usually port 465).",
    )
    smtp_username: str | None = Field(
        default=None, description="SMTP user name; with `smtp_password`, log in (AUTH)."
    )
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for the SMTP server before giving up."
    )
    send_rate_limit: str | None = Field(
        default=None,
        description="Most messages the SMTP server (or provider) accepts from the hub, e.g. "
        "`14/s` or `600/min`; enforced across every worker process and machine (in the "
        "database). Default: no limit.",
    )
    send_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Tries of a message that meets temporary failures (SMTP 4xx, timeouts) "
        "before it is marked failed.",
    )
    send_retry_delay: float = Field(
        default=60.0,
        gt=0,
        description="Seconds before a deferred message is tried again; doubled after each "
        "try, with jitter.",
    )
    schedule_grace: float = Field(
        default=900.0,
        ge=0,
        description="Seconds a scheduled send may start late (e.g. the hub was down); a "
        "schedule missed by more waits for confirmation instead of firing late.",
    )
    schedule_interval: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between two looks of the job that fires due scheduled sends (every "
        "hub process runs it; each schedule fires once): a send starts at most this late.",
    )
    bounce_domain: str | None = Field(
        default=None,
        description="Domain of the per-delivery return path (VERP), e.g. `bounces.example.com`:"
        " bounces come back to `bounces+<delivery>@` it. Default: no VERP; the return path is "
        "the sender's address.",
    )
    bounce_imap_host: str | None = Field(
        default=None,
        description="IMAP server of the bounce mailbox the hub polls for DSNs. Default: none.",
    )
    bounce_imap_port: int = Field(
        default=993, ge=1, le=65535, description="Port of the bounce mailbox's IMAP server."
    )
    bounce_imap_tls: Literal["none", "starttls", "ssl"] = Field(
        default="ssl",
        description="Transport security of the IMAP connection: `ssl` (port 993), `starttls` "
        "or `none` (a local server only).",
    )
    bounce_imap_username: str | None = Field(default=None, description="IMAP user name.")
    bounce_imap_password: SecretStr | None = Field(default=None, description="IMAP password.")
    bounce_imap_folder: str = Field(
        default="INBOX", description="Mailbox folder the DSNs arrive in."
    )
    bounce_imap_processed_folder: str | None = Field(
        default=None,
        description="Folder processed DSNs are moved to (created when missing); None: they "
        "are deleted once recorded.",
    )
    bounce_imap_interval: float = Field(
        default=60.0, gt=0, description="Seconds between two polls of the bounce mailbox."
    )
    bounce_smtp_host: str = Field(
        default="127.0.0.1",
        description="Address `contacthub bounces serve` (the SMTP listener for the bounce "
        "domain) binds.",
    )
    bounce_smtp_port: int = Field(
        default=2525, ge=1, le=65535, description="Port `contacthub bounces serve` listens on."
    )
    soft_bounce_limit: int = Field(
        default=3,
        ge=1,
        description="Soft bounces of one address within `soft_bounce_window_days` that "
        "suppress it.",
    )
    soft_bounce_window_days: int = Field(
        default=30, ge=1, description="Days over which soft bounces are counted."
    )
    ses_topic_arns: list[str] = Field(
        default_factory=list,
        description="Amazon SNS topic ARNs whose notifications (SES bounces, complaints, "
        "deliveries) are accepted; others are refused. Empty: SES webhooks are off.",
    )
    sns_certificate_hosts: str = Field(
        default=r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$",
        description="Regular expression the host of an SNS message's `SigningCertURL` must "
        "match (https only); the certificate is fetched from there and cached.",
    )
    sendgrid_webhook_public_key: str | None = Field(
        default=None,
        description="SendGrid's Event Webhook verification key (base64 ECDSA public key). "
        "Unset: SendGrid webhooks are off.",
    )
    postmark_webhook_username: str | None = Field(
        default=None, description="User name of the HTTP basic auth Postmark's webhooks carry."
    )
    postmark_webhook_password: SecretStr | None = Field(
        default=None,
        description="Password of that basic auth. Unset: Postmark webhooks are off.",
    )
    mailgun_webhook_signing_key: SecretStr | None = Field(
        default=None,
        description="Mailgun's HTTP webhook signing key. Unset: Mailgun webhooks are off.",
    )
    webhook_max_age: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a signed provider webhook's timestamp may be old (replay window).",
    )
    unconfirmed_subscriber_hours: float = Field(
        default=168.0,
        gt=0,
        description="Hours a double opt-in subscription may stay unconfirmed before it is deleted.",
    )
    ingest_dedupe_days: float = Field(
        default=7.0,
        gt=0,
        description="Days a `messageId` or `Idempotency-Key` is remembered: a retry within this "
        "window is answered as the first request and stores nothing new.",
    )
    webhook_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds an outgoing webhook call may take before it counts as failed.",
    )
    webhook_max_attempts: int = Field(
        default=10,
        ge=1,
        description="Tries of an event at one endpoint before its delivery is dead (dead letter).",
    )
    webhook_retry_delay: float = Field(
        default=30.0,
        gt=0,
        description="Seconds before a failed webhook call is tried again; doubled after each "
        "try, with jitter, up to `webhook_retry_max_delay`.",
    )
    webhook_retry_max_delay: float = Field(
        default=21_600.0,
        gt=0,
        description="Longest wait between two tries of a webhook call.",
    )
    webhook_dispatch_interval: float = Field(
        default=1.0,
        gt=0,
        description="Seconds between two looks of the webhook dispatcher for new events.",
    )
    retention_interval: float = Field(
        default=3600.0,
        gt=0,
        description="Seconds between two runs of the retention job.",
    )
    retention_batch_size: int = Field(
        default=5000,
        ge=1,
        description="Rows the retention job deletes per transaction (short write locks).",
    )
    partition_months_ahead: int = Field(
        default=3,
        ge=1,
        description="PostgreSQL: months of activity and email-hit partitions kept created ahead.",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or CIDR ranges of the reverse proxies in front of the hub, e.g. "
        '`["10.0.0.0/8"]`. Only a request from one of them has its `X-Forwarded-Proto` (the '
        "scheme) and `X-Forwarded-For` (the client's address) believed; uvicorn's "
        "`forwarded_allow_ips`.",
    )
    public_url: str | None = Field(
        default=None,
        description="The origin browsers reach the hub at, e.g. `https://hub.example.com`: "
        "admin forms must come from it, cookies are Secure when it is https, and links the hub "
        "makes to itself use it. Default: the scheme and host of each request.",
    )
    max_header_bytes: int = Field(
        default=65_536,
        ge=1024,
        description="Largest request line and headers `contacthub serve` accepts; larger: 431.",
    )
    request_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a client may take to send one request, headers and body, to "
        "`contacthub serve`; slower: 408 and the connection is closed.",
    )
    host: str = Field(default="127.0.0.1", description="Address `contacthub serve` binds.")
    port: int = Field(default=8000, description="Port `contacthub serve` listens on.")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value.strip(), strict=False)  # ValueError names the bad one
        return [value.strip() for value in values]

    @field_validator("public_url")
    @classmethod
    def _origin(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        # One rule for origins: the one CORS origins follow (lower case, no default port).
        from contacthub.channels.cors import ANY_ORIGIN, normalize_origin
        from contacthub.errors import HubError

        try:
            origin = normalize_origin(value)
        except HubError as error:
            raise ValueError(error.message) from None
        if origin == ANY_ORIGIN:
            raise ValueError("must be the hub's own origin, e.g. https://hub.example.com")
        return origin

    @field_validator("send_rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        # One parser for the limit: the one the limiter uses (email/ratelimit.py).
        from contacthub.email.ratelimit import parse_rate

        parse_rate(value)  # ValueError says what is wrong
        return value.strip()

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        # Refuse a typo or another database here, with the setting's name, not at first use.
        if value.split("://", 1)[0] not in DATABASE_SCHEMES:
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_file_path())
        return (init_settings, env_settings, toml)

    @property
    def site_url(self) -> str:
        """Where a browser reaches this hub: `public_url`, else the address `serve` binds."""
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def is_local(self) -> bool:
        """True when the hub runs on its embedded SQLite default (local use)."""
        return self.database_url.startswith("sqlite")
