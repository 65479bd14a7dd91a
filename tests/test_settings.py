"""Settings come from the environment and `.env` (environment wins); bad values stop start-up."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from realtime_trio._config import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_are_the_originals(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)

    settings = load_settings()

    assert settings.openai_api_key is None
    assert settings.openai_base_url == "https://api.openai.com/v1"
    assert (settings.host, settings.port) == ("0.0.0.0", 3001)
    assert settings.realtime_model == "gpt-realtime"
    assert settings.transcription_model == "gpt-4o-mini-transcribe"
    assert settings.extraction_cooldown_seconds == 60
    assert settings.sideband_debug_events is False
    assert settings.log_level == "INFO"


def test_dotenv_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "OPENAI_API_KEY=sk-from-dotenv\nPORT=4000\nREALTIME_MODEL=gpt-realtime-mini\n"
        "SIDEBAND_DEBUG_EVENTS=true\nLOG_LEVEL=debug\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PORT", "5000")

    settings = load_settings()

    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-from-dotenv"
    assert settings.port == 5000
    assert settings.realtime_model == "gpt-realtime-mini"
    assert settings.sideband_debug_events is True
    assert settings.log_level == "DEBUG"


def test_an_empty_key_counts_as_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "")

    assert load_settings().openai_api_key is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("EXTRACTION_COOLDOWN_SECONDS", "-1"),
        ("OPENAI_BASE_URL", "api.openai.com"),
        ("LOG_LEVEL", "chatty"),
        ("SIDEBAND_DEBUG_EVENTS", "perhaps"),
        ("UPSTREAM_TIMEOUT_SECONDS", "0"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as raised:
        load_settings()

    message = str(raised.value)
    assert message.startswith(f"invalid setting {variable}: ")
    assert "\n" not in message


def test_a_bad_value_stops_serve_with_one_line(tmp_path: Path) -> None:
    env = {"PATH": "", "PORT": "not-a-number", "OPENAI_API_KEY": "sk-secret-should-not-show"}

    result = subprocess.run(
        [sys.executable, "-m", "realtime_trio", "serve"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("realtime-trio: invalid setting PORT: ")
    assert "sk-secret" not in result.stderr


@pytest.mark.parametrize(
    ("base_url", "sideband"),
    [
        ("https://api.openai.com/v1", "wss://api.openai.com/v1/realtime?call_id=rtc_1"),
        ("http://127.0.0.1:8100/v1/", "ws://127.0.0.1:8100/v1/realtime?call_id=rtc_1"),
        ("https://proxy.example/openai/v1", "wss://proxy.example/openai/v1/realtime?call_id=rtc_1"),
    ],
)
def test_sideband_url_is_derived_from_the_base_url(base_url: str, sideband: str) -> None:
    settings = Settings(_env_file=None, openai_base_url=base_url)  # type: ignore[call-arg]

    assert settings.sideband_url("rtc_1") == sideband


def test_env_example_lists_every_setting_with_a_comment() -> None:
    text = (ROOT / ".env.example").read_text()
    listed = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE)

    assert sorted(listed) == sorted(name.upper() for name in Settings.model_fields)
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if re.match(r"^#?\s*[A-Z][A-Z0-9_]+=", line):
            assert lines[index - 1].startswith("# "), f"{line} has no comment above it"
