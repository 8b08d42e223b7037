"""Webhooks per the Standard Webhooks specification: each delivery is one JSON message
``{"type", "timestamp", "data": {"destination", "items"}}``, signed with every secret in force,
sent with the same ``webhook-id`` on every retry. Any 2xx is success; 410 disables the
destination, and so does a URL whose address :mod:`tailored_channels.outbound` refuses; anything
else (a redirect included, or no answer within ``CHANNELS_TIMEOUT``) is retried."""

import time

import orjson

from .. import outbound
from ..conf import get_setting
from ..signing import headers, parse_secrets
from .base import BaseBackend, Result


def body(destination, message_id: str, kind: str, items: list[dict], created: str) -> bytes:
    return orjson.dumps(
        {
            "type": kind,
            "timestamp": created,
            "data": {"destination": destination.name, "message": message_id, "items": items},
        }
    )


class WebhookBackend(BaseBackend):
    def send(self, message_id: str, kind: str, items: list[dict], created: str = "") -> Result:
        payload = body(self.destination, message_id, kind, items, created)
        signed = headers(
            parse_secrets(self.destination.secrets), message_id, int(time.time()), payload
        )
        try:
            response = outbound.request(
                "POST",
                self.destination.url,
                body=payload,
                headers={"content-type": "application/json", **signed},
            )
        except outbound.Refused as exc:
            return Result(ok=False, response=exc.reason, disable=exc.reason)
        except outbound.Failed as exc:
            return Result(ok=False, response=str(exc))
        status = response.status
        return Result(
            ok=200 <= status < 300,
            status=status,
            response=response.summary(int(get_setting("CHANNELS_RESPONSE_CHARS"))),
            gone=status == 410,
        )
