"""A real HTTP receiver for the channels tests (http.server in a thread on a free port) that
verifies every webhook with Standard Webhooks' own library, and builders."""

import hashlib
import json
import re
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from consent.log import append_record
from segments.models import MembershipChange
from tailored_channels.models import Destination


class Receiver:
    """Answers each POST with the next status of ``statuses`` (the last one repeats); keeps
    every request (headers, body, whether each secret verifies it)."""

    def __init__(self, secrets=(), statuses=(200,), handler=None, host="127.0.0.1", port=0):
        self.secrets = list(secrets)
        self.statuses = list(statuses)
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.handler = handler
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified = []
                for secret in receiver.secrets:
                    try:
                        Webhook(secret).verify(body, headers)
                        verified.append(True)
                    except WebhookVerificationError:
                        verified.append(False)
                with receiver.lock:
                    index = len(receiver.requests)
                    status = receiver.statuses[min(index, len(receiver.statuses) - 1)]
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": headers,
                            "body": body,
                            "json": json.loads(body or b"null"),
                            "verified": verified,
                            "status": status,
                        }
                    )
                extra = {}
                if receiver.handler is not None:
                    status, answer, *more = receiver.handler(self, body)
                    extra = more[0] if more else {}
                else:
                    answer = b'{"ok": true}'
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_PUT = do_PATCH = do_DELETE = do_POST  # what a redirect may become

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def items(self) -> list[dict]:
        return [
            i for r in self.requests if 200 <= r["status"] < 300 for i in r["json"]["data"]["items"]
        ]


def key(n: int) -> str:
    return f"{n:032x}"


def grant(keys, purposes=("personalization", "marketing")) -> None:
    from consent.api import grant_imported

    grant_imported(list(keys), frozenset(purposes))


def withdraw(k: str, keep=("personalization",)) -> None:
    optional = {"analytics", "personalization", "marketing"}
    append_record(
        k, granted=frozenset(keep), denied=frozenset(optional - set(keep)), method="withdraw"
    )


def change(k: str, segment: str = "high-intent", entered: bool = True) -> MembershipChange:
    return MembershipChange.objects.create(
        visitor_key=k, segment=segment, entered=entered, at=datetime.now(UTC)
    )


def changes(rows) -> None:
    now = datetime.now(UTC)
    MembershipChange.objects.bulk_create(
        [MembershipChange(visitor_key=k, segment=s, entered=e, at=now) for k, s, e in rows],
        batch_size=5000,
    )


def webhook(url: str, **fields) -> Destination:
    fields.setdefault("segments", ["high-intent"])
    fields.setdefault("purpose", "marketing")
    destination = Destination(name=fields.pop("name", "CRM"), kind="webhook", url=url, **fields)
    destination.full_clean()
    destination.save()
    return destination


class Mailchimp:
    """The few Marketing API endpoints the destination uses, with a list of members."""

    def __init__(self, emails):
        self.members = {
            hashlib.md5(e.encode(), usedforsecurity=False).hexdigest(): {"email": e, "tags": set()}
            for e in emails
        }
        self.calls = []

    def __call__(self, request, body):
        self.calls.append((request.path, request.headers.get("authorization", "")))
        tags = re.fullmatch(r"/3.0/lists/list1/members/([0-9a-f]{32})/tags", request.path)
        delete = re.fullmatch(
            r"/3.0/lists/list1/members/([0-9a-f]{32})/actions/delete-permanent", request.path
        )
        found = (tags or delete) and self.members.get((tags or delete).group(1))
        if found is None:
            return 404, b'{"status": 404, "title": "Resource Not Found"}'
        if delete:
            del self.members[delete.group(1)]
            return 204, b""
        for tag in json.loads(body)["tags"]:
            (found["tags"].add if tag["status"] == "active" else found["tags"].discard)(tag["name"])
        return 204, b""
