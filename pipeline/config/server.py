"""What the run's HTTP server and the live view share, as `http:` and a live sink set them:
who may reach the server (`auth`), and the rule that a server reachable from other machines
asks for credentials unless told it need not."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from pipeline.config.base import Strict
from sinks.live_view.access import Credentials, exposure_problem


class LiveAuthConfig(Strict):
    username: str = Field(
        "viewer",
        min_length=1,
        max_length=128,
        pattern=r"^[^:]+$",
        description="HTTP basic user name (with `password`).",
    )
    password: SecretStr | None = Field(
        None, description="HTTP basic password, 8+ characters; use ${ENV_VAR}. Never logged."
    )
    token: SecretStr | None = Field(
        None,
        description="Bearer token, 16+ characters, instead of a password (`Authorization: "
        "Bearer ...` or `?token=...`); use ${ENV_VAR}. Never logged.",
    )

    @field_validator("password", "token", mode="before")
    @classmethod
    def _secret_text(cls, value: object, info: ValidationInfo) -> object:
        # value errors never quote the input, so a rejected secret is not printed
        shortest = 8 if info.field_name == "password" else 16
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("must be text (quote it in the YAML)")
        if not shortest <= len(value) <= 1024:
            raise ValueError(f"must be {shortest} to 1024 characters long")
        return value

    @model_validator(mode="after")
    def _one_secret(self) -> LiveAuthConfig:
        if (self.password is None) == (self.token is None):
            raise ValueError("give exactly one of password and token")
        return self

    def credentials(self) -> Credentials:
        """What the live view checks requests against."""
        return Credentials(
            self.username,
            password=None if self.password is None else self.password.get_secret_value(),
            token=None if self.token is None else self.token.get_secret_value(),
        )


class ServerAccess(Strict):
    """A section that sets the server's `host`, `auth` and `allow_unauthenticated` (each in
    its own words): refused when `host` lets other machines reach what it `serves` with
    neither credentials nor the opt-out (`exposure_problem`)."""

    serves: ClassVar[str]
    """What the server shows, as the refusal names it."""

    if TYPE_CHECKING:  # the fields are the subclasses', with their descriptions
        host: str
        auth: LiveAuthConfig | None
        allow_unauthenticated: bool

    @model_validator(mode="after")
    def _not_exposed_by_accident(self) -> ServerAccess:
        problem = exposure_problem(
            self.host, self.auth is not None, self.allow_unauthenticated, served=self.serves
        )
        if problem is not None:
            raise ValueError(problem)
        return self
