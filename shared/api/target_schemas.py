"""HTTP schemas of a subscription's ``authentication`` (what a webhook's gateway asks for) and
``destination`` (a broker instead of a webhook). Unknown fields are refused; the checks are the
domain's (shared/subscriptions/targets.py), and their messages never quote a header value."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.subscriptions.targets import (
    MAX_AUDIENCE,
    MAX_HEADERS,
    Destination,
    DestinationKind,
    EndpointAuthentication,
    check_audience,
    check_entity,
    check_headers,
    check_namespace,
    check_topic_endpoint,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntraTokenIn(_Strict):
    """A bearer token as Herald's own identity (OAuth 2.0 client credentials from Microsoft Entra ID)."""

    type: Literal["entraToken"]
    audience: str = Field(
        min_length=1,
        max_length=MAX_AUDIENCE,
        description="The application ID URI of the API behind the gateway, on the endPoint's own host: "
        "https://<endPoint host>[/path] or api://<endPoint host>[/path]; Herald asks for `<audience>/.default`",
    )

    @field_validator("audience")
    @classmethod
    def _audience(cls, value: str) -> str:
        return check_audience(value)

    def value(self) -> EndpointAuthentication:
        return EndpointAuthentication.entra_token(self.audience)


class HeadersIn(_Strict):
    """Fixed headers sent with every push. The values are secrets: sealed at rest and never shown again."""

    type: Literal["headers"]
    headers: dict[str, str] = Field(
        min_length=1, max_length=MAX_HEADERS, description=f"Up to {MAX_HEADERS} header names and their values"
    )

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        check_headers(value)
        return value

    def value(self) -> EndpointAuthentication:
        return EndpointAuthentication.custom_headers(self.headers)


AuthenticationIn = Annotated[EntraTokenIn | HeadersIn, Field(discriminator="type")]


class EventGridTopicIn(_Strict):
    """An Azure Event Grid custom topic; Herald's managed identity needs EventGrid Data Sender on it."""

    type: Literal["eventGridTopic"]
    topicEndpoint: str = Field(
        min_length=1,
        max_length=2048,
        description="The topic's endpoint: https://<topic>.<region>-1.eventgrid.azure.net/api/events",
    )

    @field_validator("topicEndpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        # The form; whether a loopback fake is allowed is the service's to say (local mode).
        return check_topic_endpoint(value, loopback_allowed=True)

    def value(self) -> Destination:
        return Destination(DestinationKind.EVENT_GRID_TOPIC, topic_endpoint=self.topicEndpoint)


class ServiceBusEntityIn(_Strict):
    """An Azure Service Bus queue or topic; Herald's managed identity needs Azure Service Bus Data Sender on it."""

    type: Literal["serviceBusQueue", "serviceBusTopic"]
    namespace: str = Field(
        min_length=1,
        max_length=128,
        description="The namespace's fully qualified name: <namespace>.servicebus.windows.net",
    )
    name: str = Field(min_length=1, max_length=260, description="The queue's or topic's name")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return check_namespace(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_entity(value)

    def value(self) -> Destination:
        return Destination.service_bus(DestinationKind(self.type), self.namespace, self.name)


DestinationIn = Annotated[EventGridTopicIn | ServiceBusEntityIn, Field(discriminator="type")]


class ValidationCodeIn(_Strict):
    """The code the validation event published to a destination carried (its data's ``validationCode``)."""

    validationCode: str = Field(
        min_length=1, max_length=200, description="The validation event's `data.validationCode`"
    )
