"""alert_system's webhook URLs are checked at start-up: one that is not an absolute http(s) URL
naming a host is refused, saying what is wrong and what to write, without showing the URL (its
path is the webhook's credential); a blank one still leaves its channel off. ALERT_HISTORY_DAYS
is bounded."""

from __future__ import annotations

import pytest

from mastertrade.alerts.settings import AlertSettings
from mastertrade.core.settings import SettingsError, load_settings

WEBHOOKS = ["DISCORD_WEBHOOK_URL", "SLACK_WEBHOOK_URL", "ALERT_WEBHOOK_URL"]
SECRET = "T0KEN-s3cr3t"


def settings(**environ: str) -> AlertSettings:
    return load_settings(AlertSettings, "alert_system", environ=environ)


@pytest.mark.parametrize("variable", WEBHOOKS)
@pytest.mark.parametrize(
    ("url", "wrong"),
    [
        (f"chat.test/hook/{SECRET}", "no http:// or https:// scheme"),
        (f"//chat.test/hook/{SECRET}", "no http:// or https:// scheme"),
        (f"ftp://chat.test/hook/{SECRET}", "not an http:// or https:// URL"),
        (f"https:///hook/{SECRET}", "no host"),
        (f"https://:443/{SECRET}", "no host"),
        (f"https://ch at.test/{SECRET}", "not a URL: it has a space"),
        (f"https://chat.test:99999/{SECRET}", "not a URL: its host or port"),
        (f"https://chat.test:port/{SECRET}", "not a URL: its host or port"),
        (f"https://[::1/{SECRET}", "not a URL: its host or port"),
    ],
)
def test_a_webhook_url_that_cannot_be_posted_to_is_refused_unshown(
    variable: str, url: str, wrong: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        settings(**{variable: url})
    message = str(caught.value)
    assert f"{variable}: got a hidden value: {wrong}" in message
    assert "e.g. https://" in message
    assert SECRET not in message and "chat.test" not in message


@pytest.mark.parametrize("variable", WEBHOOKS)
@pytest.mark.parametrize(
    "url",
    [
        "https://discord.com/api/webhooks/1/abc",
        "http://127.0.0.1:8080/hook",
        " HTTPS://hooks.slack.com/services/T0/B0/x ",
        "https://[::1]:9000/hook?x=1",
    ],
)
def test_an_http_url_naming_a_host_is_accepted(variable: str, url: str) -> None:
    loaded = settings(**{variable: url, "ALERT_WEBHOOK_SECRET": "s"})
    value = getattr(loaded, variable.lower())
    assert value.get_secret_value() == url
    on = {"DISCORD_WEBHOOK_URL": "discord", "SLACK_WEBHOOK_URL": "slack"}
    assert loaded.channels()[on.get(variable, "webhook")]


@pytest.mark.parametrize("variable", WEBHOOKS)
def test_a_blank_webhook_url_is_no_url(variable: str) -> None:
    assert not any(settings(**{variable: " "}).channels().values())


def test_the_history_is_kept_90_days_by_default_and_from_1_to_3650() -> None:
    assert settings().alert_history_days == 90
    assert settings(ALERT_HISTORY_DAYS="3650").alert_history_days == 3650
    for days in ("0", "3651"):
        with pytest.raises(SettingsError, match="ALERT_HISTORY_DAYS"):
            settings(ALERT_HISTORY_DAYS=days)
