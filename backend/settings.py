"""Settings read once from the environment, validated, and typed.

A missing or malformed setting raises :class:`ConfigError` whose message names the
variable, so a process stops at start with one line that says what to fix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Formatter

from backend.errors import ConfigError

ENDPOINT_FIELDS = {"public_ip", "private_ip", "public_dns", "instance_id", "name"}
# What EC2 accepts as a launch template name.
LAUNCH_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9().\-/_]{3,128}")


@dataclass(frozen=True)
class Settings:
    secret_key: str
    redis_url: str = "redis://localhost:6379/0"
    mongodb_url: str = "mongodb://localhost:27017/cmlfleet"
    aws_regions: tuple[str, ...] = ("us-east-1",)
    aws_endpoint_url: str | None = None
    worker_tag_key: str = "cmlfleet:managed"
    worker_tag_value: str = "true"
    worker_ami_name: str = "CML-2.9*"
    worker_instance_type: str = "c5.2xlarge"
    worker_launch_template: str | None = None
    cml_username: str = "admin"
    cml_password: str | None = field(default=None, repr=False)
    cml_verify_tls: bool | str = False
    cml_endpoint: str = "https://{public_ip}"
    cml_connect_timeout: float = 3.0
    cml_read_timeout: float = 10.0
    refresh_interval_seconds: int = 300
    history_retention_days: int = 30
    sse_heartbeat_seconds: float = 15.0
    event_replay_size: int = 10000
    admin_username: str | None = None
    admin_password: str | None = field(default=None, repr=False)
    port: int = 8000
    environment: str = "production"

    @property
    def worker_tag(self) -> str:
        return f"{self.worker_tag_key}={self.worker_tag_value}"

    @property
    def development(self) -> bool:
        return self.environment in {"development", "demo", "test"}


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be greater than 0, got {raw}")
    return value


def _url(env: Mapping[str, str], name: str, default: str, schemes: set[str]) -> str:
    value = env.get(name) or default
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in schemes:
        expected = ", ".join(sorted(f"{s}://" for s in schemes))
        raise ConfigError(f"{name} must start with one of {expected}, got {value!r}")
    return value


def _verify_tls(env: Mapping[str, str]) -> bool | str:
    raw = env.get("CML_VERIFY_TLS", "false").strip()
    if raw.lower() in {"true", "1", "yes"}:
        return True
    if raw.lower() in {"false", "0", "no", ""}:
        return False
    if not os.path.isfile(raw):
        raise ConfigError(
            f"CML_VERIFY_TLS must be true, false or a CA bundle path; {raw!r} "
            "is no file"
        )
    return raw


def _endpoint(env: Mapping[str, str]) -> str:
    value = env.get("CML_ENDPOINT") or Settings.cml_endpoint
    try:
        names = {name for _, name, _, _ in Formatter().parse(value) if name}
    except ValueError as exc:
        raise ConfigError(f"CML_ENDPOINT is not a valid template: {exc}") from None
    unknown = names - ENDPOINT_FIELDS
    if unknown:
        allowed = ", ".join("{" + n + "}" for n in sorted(ENDPOINT_FIELDS))
        raise ConfigError(
            f"CML_ENDPOINT uses unknown field {{{sorted(unknown)[0]}}}; "
            f"allowed: {allowed}"
        )
    if not value.startswith(("http://", "https://")):
        raise ConfigError(
            f"CML_ENDPOINT must start with http:// or https://: {value!r}"
        )
    return value


def _tag(env: Mapping[str, str]) -> tuple[str, str]:
    raw = env.get("WORKER_TAG") or "cmlfleet:managed=true"
    key, sep, value = raw.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ConfigError(f"WORKER_TAG must look like key=value, got {raw!r}")
    return key.strip(), value.strip()


def _launch_template(env: Mapping[str, str]) -> str | None:
    raw = (env.get("WORKER_LAUNCH_TEMPLATE") or "").strip()
    if not raw:
        return None
    if not LAUNCH_TEMPLATE_NAME.fullmatch(raw):
        raise ConfigError(
            "WORKER_LAUNCH_TEMPLATE must be a launch template name (3 to 128 of "
            f"letters, digits and ( ) . - / _), got {raw!r}"
        )
    return raw


def _regions(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("AWS_REGIONS") or "us-east-1"
    regions = tuple(r.strip() for r in raw.split(",") if r.strip())
    if not regions:
        raise ConfigError("AWS_REGIONS must name at least one region")
    for region in regions:
        if not region.replace("-", "").isalnum():
            raise ConfigError(f"AWS_REGIONS has a malformed region {region!r}")
    return regions


def load_settings(
    env: Mapping[str, str] | None = None, *, environment: str | None = None
) -> Settings:
    """Read and validate every setting from ``env`` (the process environment)."""
    env = os.environ if env is None else env
    environment = environment or env.get("CMLFLEET_ENV", "production")
    secret_key = env.get("SECRET_KEY", "")
    if not secret_key:
        if environment not in {"development", "demo", "test"}:
            raise ConfigError("SECRET_KEY is required: set it to a long random string")
        secret_key = os.urandom(32).hex()
    elif len(secret_key) < 16 and environment == "production":
        raise ConfigError("SECRET_KEY is too short: use at least 16 characters")

    tag_key, tag_value = _tag(env)
    admin_username = env.get("ADMIN_USERNAME") or None
    admin_password = env.get("ADMIN_PASSWORD") or None
    if bool(admin_username) != bool(admin_password):
        raise ConfigError("ADMIN_USERNAME and ADMIN_PASSWORD must be set together")

    return Settings(
        secret_key=secret_key,
        redis_url=_url(
            env,
            "REDIS_URL",
            Settings.redis_url,
            {"redis", "rediss", "unix", "fakeredis"},
        ),
        mongodb_url=_url(
            env,
            "MONGODB_URL",
            Settings.mongodb_url,
            {"mongodb", "mongodb+srv", "mongomock"},
        ),
        aws_regions=_regions(env),
        aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        worker_tag_key=tag_key,
        worker_tag_value=tag_value,
        worker_ami_name=env.get("WORKER_AMI_NAME") or Settings.worker_ami_name,
        worker_instance_type=env.get("WORKER_INSTANCE_TYPE")
        or Settings.worker_instance_type,
        worker_launch_template=_launch_template(env),
        cml_username=env.get("CML_USERNAME") or Settings.cml_username,
        cml_password=env.get("CML_PASSWORD") or None,
        cml_verify_tls=_verify_tls(env),
        cml_endpoint=_endpoint(env),
        cml_connect_timeout=_float(env, "CML_CONNECT_TIMEOUT_SECONDS", 3.0),
        cml_read_timeout=_float(env, "CML_READ_TIMEOUT_SECONDS", 10.0),
        refresh_interval_seconds=_int(env, "REFRESH_INTERVAL_SECONDS", 300),
        history_retention_days=_int(env, "HISTORY_RETENTION_DAYS", 30),
        sse_heartbeat_seconds=_float(env, "SSE_HEARTBEAT_SECONDS", 15.0),
        event_replay_size=_int(env, "EVENT_REPLAY_SIZE", 10000, minimum=10),
        admin_username=admin_username,
        admin_password=admin_password,
        port=_int(env, "PORT", 8000),
        environment=environment,
    )
