"""Mailchimp Marketing through its official client (``pip install 'wagtail-tailored[mailchimp]'``).

A segment is a member tag (named by the segment's slug, or ``options["tags"][slug]``); members
are found by the MD5 of their lower-cased email address. Entering makes the tag active, leaving
or withdrawing makes it inactive, erasure deletes the member permanently. Deliveries hold at
most 500 items. ``options``: ``server`` (``us1``), ``list_id``, ``api_key`` and, for tests or a
proxy, ``host`` (the API's base URL).

The client's requests go through :mod:`tailored_channels.outbound` (its ``request`` method is
replaced on each client): the API's address is checked like a webhook's, and a ``server`` or
``list_id`` that is not a plain name (the client pastes ``server`` into the host name) is
refused before anything is sent. A delivery is one request per member, so the worker's hold on
the destination is renewed between them (:meth:`BaseBackend.keep_lease`), and the send stops
when it has been lost.
"""

import base64
import hashlib
import json
from urllib.parse import urlencode

from .. import outbound
from ..models import mailchimp_problem as options_problem
from .base import BaseBackend, Result

API_HOST = "https://server.api.mailchimp.com/3.0"
LEASE_LOST = "the worker no longer held the destination"


class EmptyAnswer(Exception):
    """A refusal without a body, which the client would take for success."""

    def __init__(self, status: int):
        super().__init__(f"HTTP {status} without a body")
        self.status = status


def _status(exc) -> int | None:
    return exc.text.status if isinstance(exc.text, EmptyAnswer) else exc.status_code


class _ClientResponse:
    """What the client reads of a ``requests`` response, from an outbound one."""

    def __init__(self, response: outbound.Response):
        self.status_code = response.status
        self.ok = response.status < 400
        self.headers = response.headers
        self.text = response.text
        self._body = response.body

    def json(self):
        return json.loads(self._body)


def _transport(api_client, timeout: float | None = None):
    """The client's ``request(method, url, query_params, headers, body)`` over outbound."""

    def request(method, url, query_params=None, headers=None, body=None):
        headers = dict(headers or {})
        if api_client.is_basic_auth:
            token = base64.b64encode(f"user:{api_client.api_key}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if api_client.is_oauth:
            headers["Authorization"] = f"Bearer {api_client.access_token}"
        if query_params:
            url += ("&" if "?" in url else "?") + urlencode(query_params)
        data = json.dumps(body).encode() if method in ("POST", "PUT", "PATCH") else None
        response = outbound.request(method, url, body=data, headers=headers, timeout=timeout)
        if not 200 <= response.status < 300 and not response.body:
            raise EmptyAnswer(response.status)  # a redirect, say: never followed
        return _ClientResponse(response)

    return request


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()


class MailchimpBackend(BaseBackend):
    def client(self):
        import mailchimp_marketing  # the optional extra; loaded in the worker only

        options = self.destination.options
        client = mailchimp_marketing.Client()
        client.set_config({"api_key": options["api_key"], "server": options["server"]})
        client.api_client.host = (options.get("host") or API_HOST).rstrip("/")
        client.api_client.request = _transport(client.api_client)
        return client

    def tag(self, slug: str) -> str:
        return (self.destination.options.get("tags") or {}).get(slug, slug)

    def send(self, message_id: str, kind: str, items: list[dict], created: str = "") -> Result:
        from mailchimp_marketing.api_client import ApiClientError

        problem = options_problem(self.destination.options)
        if problem:
            return Result(ok=False, response=problem, disable=problem)
        client = self.client()
        list_id = self.destination.options["list_id"]
        everything = [self.tag(s) for s in self.destination.segments]
        done = 0
        try:
            for item in items:
                if item["identifier"]["type"] != "email":
                    continue
                if not self.keep_lease():
                    # Another worker sends to this audience now (this one outlasted its lease):
                    # it sends this delivery again, then the later ones, in order.
                    return Result(
                        ok=False,
                        response=f"{done} of {len(items)} applied; stopped: {LEASE_LOST}",
                    )
                member = subscriber_hash(item["identifier"]["value"])
                if item["type"] == "visitor.erased":
                    try:
                        client.lists.delete_list_member_permanent(list_id, member)
                    except ApiClientError as exc:
                        if _status(exc) != 404:  # already gone: done
                            raise
                    done += 1
                    continue
                if item["type"] == "segment.entered":
                    tags = [{"name": self.tag(item["segment"]), "status": "active"}]
                elif item["type"] == "segment.exited":
                    tags = [{"name": self.tag(item["segment"]), "status": "inactive"}]
                else:  # consent.withdrawn: out of every segment of this destination
                    tags = [{"name": t, "status": "inactive"} for t in everything]
                try:
                    client.lists.update_list_member_tags(list_id, member, {"tags": tags})
                except ApiClientError as exc:
                    # Not a member of the audience: nothing to tag (or to remove).
                    if _status(exc) != 404:
                        raise
                done += 1
        except ApiClientError as exc:
            if isinstance(exc.text, outbound.Refused):  # the client wraps what request raised
                reason = exc.text.reason
                return Result(
                    ok=False, response=f"{done} of {len(items)} applied; {reason}", disable=reason
                )
            status = _status(exc)
            return Result(
                ok=False,
                status=status,
                response=f"{done} of {len(items)} applied; {str(exc.text)[:300]}",
                gone=False,
            )
        return Result(ok=True, status=200, response=f"{done} of {len(items)} applied")
