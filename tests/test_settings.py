"""Settings are validated at start with one line naming the variable."""

import subprocess
import sys

import pytest

from backend.errors import ConfigError
from backend.settings import load_settings


def test_defaults_follow_the_design():
    settings = load_settings({"SECRET_KEY": "0123456789abcdef"})

    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.aws_regions == ("us-east-1",)
    assert settings.worker_tag == "cmlfleet:managed=true"
    assert settings.refresh_interval_seconds == 300
    assert settings.cml_verify_tls is False
    assert settings.worker_launch_template is None


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, "SECRET_KEY"),
        ({"REFRESH_INTERVAL_SECONDS": "soon"}, "REFRESH_INTERVAL_SECONDS"),
        ({"REFRESH_INTERVAL_SECONDS": "0"}, "REFRESH_INTERVAL_SECONDS"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"MONGODB_URL": "postgres://x"}, "MONGODB_URL"),
        ({"WORKER_TAG": "managed"}, "WORKER_TAG"),
        ({"CML_ENDPOINT": "https://{address}"}, "CML_ENDPOINT"),
        ({"CML_VERIFY_TLS": "/no/such/bundle.pem"}, "CML_VERIFY_TLS"),
        ({"AWS_REGIONS": " , "}, "AWS_REGIONS"),
        ({"ADMIN_USERNAME": "root"}, "ADMIN_PASSWORD"),
        ({"SSE_HEARTBEAT_SECONDS": "-1"}, "SSE_HEARTBEAT_SECONDS"),
        ({"WORKER_LAUNCH_TEMPLATE": "cml worker"}, "WORKER_LAUNCH_TEMPLATE"),
    ],
)
def test_bad_setting_names_the_variable(env, names):
    if env:
        env = {"SECRET_KEY": "0123456789abcdef", **env}

    with pytest.raises(ConfigError, match=names):
        load_settings(env)


def test_bad_setting_stops_a_command_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli", "init"],
        env={
            "SECRET_KEY": "0123456789abcdef",
            "REFRESH_INTERVAL_SECONDS": "x",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "REFRESH_INTERVAL_SECONDS" in lines[0]
    assert "Traceback" not in result.stderr
