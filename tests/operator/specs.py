"""Specs (values) beyond the chart's profiles, each exercising a corner of the rendering."""

from __future__ import annotations

import random
from typing import Any

Spec = dict[str, Any]

LIVE: Spec = {
    "settings": {
        "trading": {"TRADING_ENVIRONMENT": "live", "PAPER_TRADING_INITIAL_BALANCE": 2500.75},
        "risk": {"MAX_POSITION_SIZE_PCT": 0.05, "MAX_PORTFOLIO_DRAWDOWN_PCT": 0.1},
    },
    "apiKeys": {"existingSecret": "binance-keys"},
}

NUMBERS_AND_ENV: Spec = {
    "settings": {
        "strategy": {"DAILY_GENERATION_COUNT": 100000, "GENERATION_TIME": "23:59"},
        "trading": {"PAPER_TRADING_INITIAL_BALANCE": 1234567.5},
        "email": {"EMAIL_HOST": "mail.example.org", "EMAIL_PORT": 2525},
        "logging": {"LOG_LEVEL": "DEBUG", "LOG_FORMAT": "console"},
    },
    "workloads": {
        "riskManager": {
            "env": {"TINY": 0.00001, "MILLION": 1000000, "FLAG": True, "WORD": "yes"},
            "extraEnv": [
                {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
            ],
        },
        "grafana": {"env": {"GF_LOG_LEVEL": "warn", "GF_USERS_ALLOW_SIGN_UP": False}},
    },
}

NAMES_AND_IMAGES: Spec = {
    "nameOverride": "mt",
    "auth": {
        "postgresUser": "trader",
        "database": "desk",
        "rabbitmqUser": "bus",
        "rabbitmqVhost": "/desk",
        "grafanaAdminUser": "root",
        "postgresPassword": "abc123",
        "grafanaAdminPassword": "s3cret!",
    },
    "image": {"tag": "1.2.3", "pullPolicy": "Always"},
    "prometheus": {"scrapeInterval": "30s"},
    "workloads": {
        "redis": {"image": {"repository": "valkey/valkey", "tag": "8", "pullPolicy": "Always"}},
        "grafana": {"ports": [{"name": "http", "port": 3300, "containerPort": 3000}]},
        "prometheus": {"ports": [{"name": "web", "port": 9091}]},
        "dataAccessApi": {
            "args": ["serve", "data-access-api", "--workers", "2"],
            "command": ["python", "-m", "mastertrade"],
            "securityContext": {"runAsUser": 2000, "runAsGroup": 2000, "fsGroup": 2000},
            "writablePaths": ["/tmp", "/var/cache/mastertrade"],
            "affinity": {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 50,
                            "podAffinityTerm": {
                                "topologyKey": "kubernetes.io/hostname",
                                "labelSelector": {"matchLabels": {"app": "x"}},
                            },
                        }
                    ]
                }
            },
        },
    },
}

NO_MONITORING: Spec = {
    "migrations": {"enabled": False},
    "networkPolicy": {"enabled": True},
    "image": {"writablePaths": []},
    "workloads": {
        "prometheus": {"enabled": False},
        "grafana": {"enabled": False},
        "postgres": {"persistence": {"enabled": False}, "healthCheck": {"startPeriod": 0}},
        "orderExecutor": {"replicas": 0},
        "alertSystem": {"replicas": 2},
    },
}

FULLNAME: Spec = {"fullnameOverride": "trading-desk-", "global": {"storageClass": "standard"}}

NO_BACKUP: Spec = {"backup": {"enabled": False}}

RESTORE: Spec = {
    "auth": {"existingSecret": "desk-credentials", "postgresUser": "trader", "database": "desk"},
    "global": {"imageRegistry": "mirror.example.org", "imagePullSecrets": ["mirror"]},
    "backup": {
        "schedule": "30 1 * * 1-5",
        "timeZone": "Europe/London",
        "retentionDays": 30,
        "persistence": {"size": "100Gi", "storageClass": "fast-ssd"},
        "restoreFrom": "mastertrade_20260101T020000Z.dump",
    },
    "workloads": {"postgres": {"image": {"tag": "15.8-alpine", "pullPolicy": "Always"}}},
}

EXTRA_SPECS: dict[str, tuple[str, Spec]] = {
    "live-trading": ("prod", LIVE),
    "numbers-and-env": ("mastertrade", NUMBERS_AND_ENV),
    "names-and-images": ("desk", NAMES_AND_IMAGES),
    "no-monitoring": ("mastertrade-staging", NO_MONITORING),
    "fullname-override": ("x", FULLNAME),
    "no-backup": ("mastertrade", NO_BACKUP),
    "restore": ("desk", RESTORE),
    "long-release-name": ("a-release-name-that-is-long-for-kubernetes-objects-01", {}),
}


def _number(rng: random.Random) -> float | int:
    """A number as a user might write it: whole or not, tiny or huge."""
    magnitude = 10.0 ** rng.randint(-7, 12)
    value = rng.choice([rng.random() * magnitude, float(rng.randint(1, 10**6)), magnitude])
    return round(value, rng.randint(0, 9)) if rng.random() < 0.5 else value


def random_spec(seed: int) -> Spec:
    """A spec drawn from `seed`: numbers in settings and env, scaling and switches."""
    rng = random.Random(seed)
    env = {f"VAR_{i}": rng.choice([_number(rng), rng.random() < 0.5, "text"]) for i in range(4)}
    workloads: Spec = {
        key: {"replicas": rng.randint(0, 4)}
        for key in rng.sample(["strategyService", "marketDataService", "riskManager"], 2)
    }
    workloads[rng.choice(["orderExecutor", "alertSystem", "redis"])] = {"env": env}
    if rng.random() < 0.5:
        workloads.update({"grafana": {"enabled": False}, "monitoringUi": {"enabled": False}})
    return {
        "settings": {
            "trading": {"PAPER_TRADING_INITIAL_BALANCE": abs(_number(rng)) or 1},
            "risk": {"MAX_POSITION_SIZE_PCT": round(rng.uniform(0.05, 1), rng.randint(2, 6))},
            "strategy": {"MAX_ACTIVE_STRATEGIES": rng.randint(1, 1000)},
        },
        "networkPolicy": {"enabled": rng.random() < 0.7},
        "persistence": {"keepOnUninstall": rng.random() < 0.5},
        "migrations": {"enabled": rng.random() < 0.7},
        "workloads": workloads,
    }
