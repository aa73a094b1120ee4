"""The operator's settings checked before it starts (no Kubernetes client imported here:
the client reads $KUBECONFIG at import, which `--kubeconfig` sets first)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentnet_operator import names

JITTER_FACTOR = 1.2  # client-go's: a standby waits retry period × [1, 1 + 1.2) between reads


class LeaseSettings(BaseModel):
    """Where the Lease is and its timing (client-go's LeaderElectionConfig, same defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)] = names.FIELD_MANAGER
    duration_seconds: Annotated[int, Field(gt=0)] = 15
    """How long a standby waits, from the last change of the Lease it saw, before taking it over."""
    renew_deadline_seconds: Annotated[float, Field(gt=0)] = 10.0
    """How long the holder keeps leading without renewing before it stops."""
    retry_period_seconds: Annotated[float, Field(gt=0)] = 2.0
    """How often the holder renews and a standby reads the Lease."""

    @model_validator(mode="after")
    def _ordered(self) -> LeaseSettings:
        if self.duration_seconds <= self.renew_deadline_seconds:
            raise ValueError(f"lease duration ({self.duration_seconds} s) must be greater than the renew deadline "
                             f"({self.renew_deadline_seconds} s): the holder must stop before a standby may start")
        if self.renew_deadline_seconds <= JITTER_FACTOR * self.retry_period_seconds:
            raise ValueError(f"renew deadline ({self.renew_deadline_seconds} s) must be greater than "
                             f"{JITTER_FACTOR} × the retry period ({self.retry_period_seconds} s): "
                             "at least one renewal must fit in it")
        return self
