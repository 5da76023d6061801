"""alert_system (seed port 8007): sends alerts by e-mail, Telegram, Discord, Slack and SMS."""
