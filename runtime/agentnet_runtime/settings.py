"""Every process's settings: one typed, frozen object per component, built once at start, and
guide 001's variables for the agents, with the deployment guides' names, units and defaults.

Where a component's setting comes from, first found wins:
  1. the environment variable of the setting's name in upper case (the guides' names, such as
     SATURATION_TIMEOUT_MS; set per component by spec.components[].env): the more local of the two;
  2. network.json components[NAME].settings (spec.components[].settings), under the same name in
     any case (SATURATION_TIMEOUT_MS or saturation_timeout_ms);
  3. a default taken from the network (e.g. the agents' heartbeat interval), else the field's default.
For the agents, command-line flags come first, then the environment, then the defaults.

A value that breaks its rule stops the process at start with a ConfigError naming where it came
from and the bound, e.g. "SATURATION_TIMEOUT_MS must be > 0, got -5". Identity settings the guides
set (COMPONENT_ID, COLOR, POLARITY) are checked against the component that reads them: a pod
wired to the wrong component fails instead of serving as another.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Annotated, Any, Literal, Mapping, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from agentnet_runtime.config import AgentSettings, ConfigError, RuntimeConfig
from agentnet_runtime.core.colour import Colour
from agentnet_runtime.core.membership import GONE_AFTER
from agentnet_runtime.core.terms import DEPTH_CEILING, MAX_TERM_DEPTH, MAX_TERM_SIZE

S = TypeVar("S", bound="ComponentSettings")

URL_RULE = "an http(s) URL of the peer's /sync routes, such as http://other:8080/sync"


def peer_url(value: Any) -> str:
    """The peer's /sync base URL without a trailing slash; ValueError says what is wrong."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string (got {value!r})")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"must be {URL_RULE} (got {value!r})")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        raise ValueError(f"has a bad port (got {value!r})") from None
    return value.strip().rstrip("/")


class _Settings(BaseSettings):
    # Frozen: read once at start, shown by GET /, never changed while the process runs.
    # env_ignore_empty: an empty variable (a Kubernetes env entry with no value) means "not set".
    model_config = SettingsConfigDict(frozen=True, extra="forbid", case_sensitive=False, env_ignore_empty=True)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment over the keyword arguments (which `load` fills from network.json).
        return env_settings, init_settings


class ComponentSettings(_Settings):
    """What every component reads. Subclasses add their own fields; `load` builds one."""

    component_id: str = Field("", description="COMPONENT_ID: the component's name; must match the one it is set on")

    @classmethod
    def identity(cls, component: str) -> dict[str, Any]:
        """Settings the component has by what it is: any value given must agree."""
        return {"component_id": component}

    @classmethod
    def network_defaults(cls, config: RuntimeConfig) -> dict[str, Any]:
        """Defaults taken from the network (below network.json's settings and the environment)."""
        return {}


def load(model: type[S], component: str, config: RuntimeConfig) -> S:
    """`model` for `component` from the environment over network.json over the defaults; a
    ConfigError names the variable or the network.json key that is wrong and its rule."""
    given = (config.network.components.get(component) or {}).get("settings") or {}
    keys = {key.lower(): key for key in given}
    unknown = sorted(key for key in given if key.lower() not in model.model_fields)
    if unknown:
        known = ", ".join(name.upper() for name in model.model_fields)
        raise ConfigError(f"components[{component}].settings.{unknown[0]} is not a setting of {component} (known: {known})")
    layer = {**model.identity(component), **model.network_defaults(config), **{key.lower(): value for key, value in given.items()}}
    try:
        settings = model(**layer)
    except ValidationError as error:
        raise ConfigError(_message(error, component, keys)) from None
    for field, value in model.identity(component).items():
        if getattr(settings, field) != value:
            raise ConfigError(f"{_source(field, component, keys)} must be {value} for {component}, got {getattr(settings, field)}")
    return settings


def _source(field: str, component: str, keys: Mapping[str, str]) -> str:
    """Where `field` was read: its environment variable, else its network.json key."""
    for name, value in os.environ.items():
        if name.lower() == field and value:
            return name
    return f"components[{component}].settings.{keys.get(field, field.upper())}"


def _message(error: ValidationError, component: str, keys: Mapping[str, str]) -> str:
    """The first error as "<where> must be <rule>, got <value>"."""
    first = error.errors()[0]
    where = _source(str(first["loc"][0]) if first["loc"] else "", component, keys)
    if first["type"] == "value_error":  # a validator's own message, which shows the value
        return f"{where} {str(first['msg']).removeprefix('Value error, ')}"
    return f"{where} {_rule(first)}, got {_shown(first.get('input'))}"


def _rule(error: Mapping[str, Any]) -> str:
    """A pydantic error as the rule that was broken: "must be > 0", "must be an integer", ..."""
    context = error.get("ctx") or {}
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if error["type"] in bounds:
        return f"must be {bounds[error['type']]} {next(iter(context.values())):g}"
    if error["type"] in ("int_parsing", "int_from_float", "int_type"):
        return "must be an integer"
    if error["type"] in ("float_parsing", "float_type"):
        return "must be a number"
    if error["type"] == "finite_number":
        return "must be a finite number"
    if error["type"] == "literal_error":
        return f"must be {context.get('expected')}"
    return f"is refused: {error['msg']}"


def _shown(value: Any) -> str:
    return value if isinstance(value, str) and value.strip() else repr(value)


# --- the components ----------------------------------------------------------------------------


class CrdtSettings(ComponentSettings):
    cache_size_mb: float = Field(50, gt=0, allow_inf_nan=False, description="merge cache bound in MiB (an entry costs its JSON's length)")


class EgraphSettings(ComponentSettings):
    saturation_timeout_ms: int = Field(5_000, gt=0, description="time budget of one saturation")
    node_limit: int = Field(10_000, gt=0, description="e-nodes one saturation may grow to")
    memo_size: int = Field(10_000, gt=0, description="answers memoised per family set and budget")


class StreamSettings(ComponentSettings):
    color: Literal["RED", "BLUE", "GREEN"] = Field("RED", description="COLOR: the stream's colour; must be its own")
    polarity: Literal["positive", "negative", "neutral"] = Field("positive", description="POLARITY: must be its colour's")
    batch_size: int = Field(128, gt=0, description="terms taken from the work queue at once")
    saturation_timeout_ms: int = Field(100, gt=0, description="time budget of one batch's saturation")
    node_limit: int = Field(20_000, gt=0, description="e-nodes one batch's saturation may grow to")
    redeliver_ms: int = Field(2_000, gt=0, description="unacknowledged work comes back after this")
    lag_interval_ms: int = Field(1_000, gt=0, description="how often the work queue's lag is read")

    @classmethod
    def identity(cls, component: str) -> dict[str, Any]:
        colour = component.removeprefix("stream-").upper()
        return {**super().identity(component), "color": colour, "polarity": Colour(colour).polarity}


class VerificationSettings(ComponentSettings):
    num_agents: int = Field(17, ge=1, le=1001, description="K: how many verifiers vote on a claim")
    quorum: float = Field(2 / 3, gt=0, le=0.999, description="share of votes a verdict needs")
    threshold: float = Field(0.8, gt=0, le=1, description="default similarity a skill match needs")
    subset: float = Field(0.5, gt=0, le=1, description="share of a skill vector one verifier samples")
    pull_interval: float = Field(1.0, ge=0, allow_inf_nan=False, description="seconds between pulls from the agents (0: none)")
    sync_timeout: float = Field(2.0, gt=0, allow_inf_nan=False, description="seconds to wait for an agent's sync reply")
    iterations: int = Field(30, ge=1, description="most saturation iterations of a verifier")
    nodes: int = Field(10_000, ge=1, description="most e-nodes of a verifier's saturation")
    budget_ms: float = Field(50.0, gt=0, allow_inf_nan=False, description="most time of a verifier's saturation")

    @classmethod
    def network_defaults(cls, config: RuntimeConfig) -> dict[str, Any]:
        return {"sync_timeout": config.agent.sync_timeout}


class OrchestratorSettings(ComponentSettings):
    heartbeat_interval: float = Field(2.0, gt=0, allow_inf_nan=False, description="seconds between the agents' heartbeats")
    gone_after: float = Field(GONE_AFTER, gt=0, allow_inf_nan=False, description="heartbeat intervals of silence after which an agent is gone")
    sync_timeout: float = Field(2.0, gt=0, allow_inf_nan=False, description="seconds to wait for an agent's sync reply")
    sync_interval: float = Field(0.0, ge=0, allow_inf_nan=False, description="seconds between sync rounds of its own (0: none)")

    @classmethod
    def network_defaults(cls, config: RuntimeConfig) -> dict[str, Any]:
        return {"heartbeat_interval": config.agent.heartbeat_interval, "sync_timeout": config.agent.sync_timeout}


class ColorsSettings(ComponentSettings):
    algorithm: Literal["gay-jl-golden-spiral"] = Field("gay-jl-golden-spiral", description="palette: the golden-angle hue spiral")


class TransductionSettings(ComponentSettings):
    vers_endpoint: str | None = Field(None, description="the peer network's /sync base URL (none: only answer)")
    interval_ms: int = Field(500, gt=0, description="time between two exchanges with the peer")
    max_latency_ms: int = Field(100, gt=0, description="an exchange later than this is a miss and halves the next")
    local_agents: int = Field(2, gt=0, description="agents of its own network synced per round")
    max_rows_per_exchange: int = Field(20_000, gt=0, description="most e-graph rows one exchange carries each way")
    peer_token: SecretStr | None = Field(None, min_length=16, description="the peer network's API token, sent as its "
                                         "bearer token (none: this network's own, AGENTNET_API_TOKEN)")  # fmt: skip

    @field_validator("vers_endpoint")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else peer_url(value)


class TimelineSettings(ComponentSettings):
    storage: Literal["duckdb"] = Field("duckdb", description="where the log is kept")
    semantics: Literal["append-only"] = Field("append-only", description="what the log allows")
    flush_interval: float = Field(0.25, gt=0, allow_inf_nan=False, description="seconds between appends of the collected events")
    prune_interval: float = Field(60.0, gt=0, allow_inf_nan=False, description="seconds between prunes for age")


class DashboardSettings(ComponentSettings):
    metrics_refresh_ms: int = Field(1_000, gt=0, description="time between samples of the component metrics")
    heartbeat_interval: float = Field(2.0, ge=0.01, le=3600, description="seconds between the agents' heartbeats")
    update_interval: float = Field(0.5, ge=0.05, le=1.0, description="seconds between pushes to the open pages")
    metrics_source: Literal["auto", "registry", "urls"] = Field("auto", description="where component metrics come from")

    @classmethod
    def network_defaults(cls, config: RuntimeConfig) -> dict[str, Any]:
        return {"heartbeat_interval": config.agent.heartbeat_interval}


# --- every HTTP server's guard (guard.py) ---------------------------------------------------------

GUARD_ENV_PREFIX = "AGENTNET_"
MAX_BODY_BYTES = 4 * 1024 * 1024  # a 20,000-row sync exchange is about 2 MiB
# Guide 001's rate limit of the mutating routes: 100 requests per 60 s per client.
RATE_LIMIT_REQUESTS = 100
RATE_LIMIT_PERIOD_SECONDS = 60
# Their rules, which the operator's spec.limits shares.
BodyBytes = Annotated[int, Field(ge=1024, le=1024**3)]
TermDepth = Annotated[int, Field(ge=1, le=DEPTH_CEILING)]
TermSize = Annotated[int, Field(ge=1, le=1_000_000)]
RateRequests = Annotated[int, Field(ge=0, le=1_000_000)]
RatePeriod = Annotated[int, Field(ge=1, le=86_400)]


class GuardSettings(_Settings):
    """What every process's HTTP server refuses (guard.py), from AGENTNET_<NAME> variables: the operator
    sets them on every pod from spec.limits and the network's API token Secret; `agentnet up` from its
    flags. Unset, a process takes the defaults below, requires no token and limits no rate."""

    model_config = SettingsConfigDict(env_prefix=GUARD_ENV_PREFIX, frozen=True, extra="forbid", case_sensitive=False,
                                      env_ignore_empty=True)  # fmt: skip

    api_token: SecretStr | None = Field(None, min_length=16, description="bearer token the mutating routes require (none: open)")
    max_body_bytes: BodyBytes = Field(MAX_BODY_BYTES, description="largest request body of any route (413 beyond)")
    max_term_depth: TermDepth = Field(MAX_TERM_DEPTH, description="deepest term a route parses (422 beyond)")
    max_term_size: TermSize = Field(MAX_TERM_SIZE, description="most nodes of a term a route parses (422 beyond)")
    rate_limit_requests: RateRequests = Field(0, description="mutating requests a client may make per period (0: no limit)")
    rate_limit_period_seconds: RatePeriod = Field(RATE_LIMIT_PERIOD_SECONDS, description="the period of rate_limit_requests")

    @classmethod
    def env_name(cls, field: str) -> str:
        """The variable a field is read from (the operator sets it on every pod)."""
        assert field in cls.model_fields, field
        return GUARD_ENV_PREFIX + field.upper()

    @classmethod
    def read(cls, **given: Any) -> "GuardSettings":
        """From the environment over `given`; a ConfigError names the variable and its rule."""
        try:
            return cls(**given)
        except ValidationError as error:
            first = error.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else ""
            raise ConfigError(f"{cls.env_name(field) if field in cls.model_fields else field} {_rule(first)}, "
                              f"got {_shown(first.get('input'))}") from None  # fmt: skip


# --- the agents -----------------------------------------------------------------------------------


class AgentEnvironment(_Settings):
    """Guide 001's agent variables, in its units. Unset is None: then the flag's or
    config.AgentSettings' default holds, so each default has one place."""

    agent_id: int | None = Field(None, ge=0, description="AGENT_ID: the one agent this process hosts (else the pod's block)")
    sync_interval: int | None = Field(None, ge=0, description="SYNC_INTERVAL: ms between anti-entropy rounds (0: none)")
    max_buffer_size: int | None = Field(None, gt=0, description="MAX_BUFFER_SIZE: events kept while no sink takes them")

    @classmethod
    def read(cls) -> "AgentEnvironment":
        """From the environment; a ConfigError names the variable and its bound."""
        try:
            return cls()
        except ValidationError as error:
            raise ConfigError(_message(error, "agent", {})) from None

    def agent_settings(self, defaults: AgentSettings, **flags: Any) -> AgentSettings:
        """`defaults` with the flags given (not None), else these variables, else as they are."""
        from_env = {"sync_interval": None if self.sync_interval is None else self.sync_interval / 1000,
                    "max_buffered_events": self.max_buffer_size}  # fmt: skip
        chosen = {**{k: v for k, v in from_env.items() if v is not None}, **{k: v for k, v in flags.items() if v is not None}}
        return replace(defaults, **chosen)
