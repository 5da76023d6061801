"""alert_system's channel settings: a webhook or API URL that is not an absolute http(s) URL
naming a host turns its channel off (not the service, nor the other channels), saying what is
wrong and what to write, without showing the URL (a webhook's path is its credential); a blank
one still leaves its channel off. EMAIL_FROM (default EMAIL_USER) must be an address, or e-mail
is off. ALERT_HISTORY_DAYS is bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from mastertrade.alerts.adapters.channels.build import Channels, build_channels
from mastertrade.alerts.adapters.channels.email import EmailChannel
from mastertrade.alerts.settings import AlertSettings
from mastertrade.core.settings import SettingsError, load_settings

WEBHOOKS = ["DISCORD_WEBHOOK_URL", "SLACK_WEBHOOK_URL", "ALERT_WEBHOOK_URL"]
SECRET = "T0KEN-s3cr3t"
# what turns each channel on but its URL, and the URL's setting
CHANNELS = {
    "discord": ({}, "DISCORD_WEBHOOK_URL"),
    "slack": ({}, "SLACK_WEBHOOK_URL"),
    "webhook": ({"ALERT_WEBHOOK_SECRET": "s"}, "ALERT_WEBHOOK_URL"),
    "telegram": ({"TELEGRAM_BOT_TOKEN": "1:t", "TELEGRAM_CHAT_ID": "-1"}, "TELEGRAM_API_URL"),
    "sms": (
        {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "TWILIO_PHONE_NUMBER": "+1",
         "TWILIO_TO_NUMBER": "+2"},
        "TWILIO_API_URL",
    ),
}  # fmt: skip
EMAIL = {"EMAIL_USER": "bot@x.io", "EMAIL_PASSWORD": "pw"}


def settings(**environ: str) -> AlertSettings:
    return load_settings(AlertSettings, "alert_system", environ=environ)


@asynccontextmanager
async def built(**environ: str) -> AsyncIterator[Channels]:
    """The channels of these settings, their HTTP clients closed after."""
    found = build_channels(settings(**environ))
    try:
        yield found
    finally:
        await found.close()


@pytest.mark.parametrize("channel", sorted(CHANNELS))
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
async def test_a_url_that_cannot_be_posted_to_turns_its_channel_off_unshown(
    channel: str, url: str, wrong: str
) -> None:
    """The service starts (the settings load), the channel is off with the reason, every other
    channel configured is on."""
    needs, variable = CHANNELS[channel]
    other = "discord" if channel == "slack" else "slack"
    on_too = {f"{other.upper()}_WEBHOOK_URL": "https://chat.example/hook"}
    async with built(**needs, **on_too, **EMAIL, **{variable: url}) as found:
        error = found.errors[channel]
    assert channel not in found.on and set(found.on) == {"email", other}
    assert error.startswith(f"{variable} is not usable: {wrong}")
    assert SECRET not in error and "chat.test" not in error
    if channel in ("discord", "slack", "webhook"):
        assert "e.g. https://" in error  # what to write instead


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
async def test_an_http_url_naming_a_host_is_accepted(variable: str, url: str) -> None:
    loaded = settings(**{variable: url, "ALERT_WEBHOOK_SECRET": "s"})
    value = getattr(loaded, variable.lower())
    assert value.get_secret_value() == url
    on = {"DISCORD_WEBHOOK_URL": "discord", "SLACK_WEBHOOK_URL": "slack"}
    name = on.get(variable, "webhook")
    assert loaded.channels()[name]
    async with built(**{variable: url, "ALERT_WEBHOOK_SECRET": "s"}) as found:
        assert list(found.on) == [name] and found.errors == {}


@pytest.mark.parametrize("variable", WEBHOOKS)
def test_a_blank_webhook_url_is_no_url(variable: str) -> None:
    assert not any(settings(**{variable: " "}).channels().values())


async def test_each_http_channel_has_a_client_of_its_own() -> None:
    """One pool per channel: a channel whose server hangs holds only its own connections."""
    needs = {k: v for n in ("telegram", "sms", "webhook") for k, v in CHANNELS[n][0].items()}
    urls = dict.fromkeys(WEBHOOKS, "https://x.test/hook")
    async with built(**needs, **urls) as found:
        clients = [getattr(channel, "client", None) for channel in found.on.values()]
    assert len(found.on) == 5 and None not in clients
    assert len({id(client) for client in clients}) == 5 == len(found.clients)


@pytest.mark.parametrize(
    ("sender", "address"),
    [("alerts@x.io", "alerts@x.io"), ("MasterTrade <alerts@x.io>", "alerts@x.io")],
)
async def test_email_comes_from_email_from_and_goes_to_it_by_default(
    sender: str, address: str
) -> None:
    """A relay logs in with a user name that is no address (SendGrid's "apikey")."""
    async with built(EMAIL_USER="apikey", EMAIL_PASSWORD="pw", EMAIL_FROM=sender) as found:
        email = found.on["email"]
    assert isinstance(email, EmailChannel)
    assert (email.user, email.sender, email.recipients) == ("apikey", sender, [address])


async def test_email_comes_from_email_user_when_no_email_from_is_set() -> None:
    async with built(**EMAIL, ALERT_EMAIL_TO="ops@x.io") as found:
        email = found.on["email"]
    assert isinstance(email, EmailChannel)
    assert (email.sender, email.recipients) == ("bot@x.io", ["ops@x.io"])


@pytest.mark.parametrize(
    ("environ", "said"),
    [
        ({"EMAIL_USER": "apikey"}, "EMAIL_USER (no EMAIL_FROM) 'apikey' is not an e-mail address"),
        ({"EMAIL_USER": "apikey", "EMAIL_FROM": "MasterTrade"}, "EMAIL_FROM 'MasterTrade' is not"),
        ({**EMAIL, "EMAIL_FROM": "a@x.io, b@x.io"}, "EMAIL_FROM 'a@x.io, b@x.io' is not"),
        ({**EMAIL, "EMAIL_FROM": "alerts@"}, "EMAIL_FROM 'alerts@' is not an e-mail address"),
        ({**EMAIL, "EMAIL_FROM": "a@x.io\nBcc: all@x.io"}, "EMAIL_FROM 'a@x.io\\nBcc"),
    ],
)
async def test_an_email_from_that_is_no_address_turns_email_off(
    environ: dict[str, str], said: str
) -> None:
    slack = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/x"}
    async with built(**{"EMAIL_PASSWORD": "pw", **slack, **environ}) as found:
        pass
    assert "email" not in found.on and list(found.on) == ["slack"]
    assert found.errors["email"].startswith(said)
    assert "set EMAIL_FROM to the address alerts come from" in found.errors["email"]


@pytest.mark.parametrize("listed", ["ops@x.io; risk@x.io", "ops@x.io, risk", "ops@x.io, a@b@c"])
async def test_an_alert_email_to_that_lists_no_addresses_turns_email_off(listed: str) -> None:
    """Written with ";" the list would be one recipient, refused by the server at every alert
    while the channel showed as on."""
    async with built(**EMAIL, ALERT_EMAIL_TO=listed) as found:
        pass
    assert "email" not in found.on
    assert found.errors["email"].startswith("ALERT_EMAIL_TO ")
    assert "separated by commas" in found.errors["email"]


async def test_alert_email_to_takes_addresses_with_names_separated_by_commas() -> None:
    async with built(**EMAIL, ALERT_EMAIL_TO="ops@x.io, Risk <risk@x.io>") as found:
        email = found.on["email"]
    assert isinstance(email, EmailChannel)
    assert email.recipients == ["ops@x.io", "Risk <risk@x.io>"]


def test_the_history_is_kept_90_days_by_default_and_from_1_to_3650() -> None:
    assert settings().alert_history_days == 90
    assert settings(ALERT_HISTORY_DAYS="3650").alert_history_days == 3650
    for days in ("0", "3651"):
        with pytest.raises(SettingsError, match="ALERT_HISTORY_DAYS"):
            settings(ALERT_HISTORY_DAYS=days)
