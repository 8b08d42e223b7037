"""Destinations as an attacker sees them: a URL typed in the admin makes the workers send
requests from inside the site's network. Every vector is tried against real servers on the
loopback interface (the "internal service" each one must not reach); only DNS answers are
stubbed (``socket.getaddrinfo`` for names under ``.attacker.test`` and ``.example.test``)."""

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
import time

import pytest
from django.utils import timezone

from tailored_channels import signing
from tailored_channels.backends.webhook import WebhookBackend
from tailored_channels.conf import get_setting
from tailored_channels.models import Delivery, Destination

from .helpers import Receiver

ITEM = {
    "type": "segment.entered",
    "segment": "high-intent",
    "identifier": {"type": "email", "value": "visitor1@example.com"},
    "at": "2026-12-01T00:00:00Z",
}


@pytest.fixture
def dns(monkeypatch):
    """``answers[name] = [first, second, ...]``: each lookup of ``name`` gets the next list of
    addresses (the last one repeats); every other name is resolved for real."""
    answers: dict[str, list[list[str]]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in answers:
            return real(host, port, *args, **kwargs)
        queue = answers[name]
        ips = queue.pop(0) if len(queue) > 1 else queue[0]
        port = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
            if ":" in ip
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in ips
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
def strict(settings):
    """No private network allowed (the default), and quick timeouts."""
    settings.CHANNELS_ALLOWED_PRIVATE_NETWORKS = []
    settings.CHANNELS_TIMEOUT = 0.5
    return settings


def hook(url: str) -> Destination:
    return Destination(name="Attacker", kind="webhook", url=url, secrets=signing.new_secret())


def send(url: str):
    return WebhookBackend(hook(url)).send("msg_1", "segment.changes", [ITEM], "2026-12-01T00:00Z")


VECTORS = [
    ("http://127.0.0.1:{port}/hook", "loopback"),
    ("http://localhost:{port}/hook", "loopback"),
    ("http://127.1:{port}/hook", "loopback"),
    ("http://2130706433:{port}/hook", "loopback"),
    ("http://0.0.0.0:{port}/hook", "unspecified"),
    ("http://[::ffff:127.0.0.1]:{port}/hook", "IPv4 127.0.0.1 inside IPv6"),
    ("http://[64:ff9b::7f00:1]:{port}/hook", "IPv4 127.0.0.1 inside IPv6"),
    ("http://[::1]:{port}/hook", "loopback"),
    ("http://internal.attacker.test:{port}/hook", "loopback"),
    ("https://internal.attacker.test:{port}/hook", "loopback"),
    ("http://bücher.attacker.test:{port}/hook", "loopback"),  # resolved by its ASCII form
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://metadata.attacker.test/latest/meta-data/", "link-local"),
    ("http://10.0.0.1:6379/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://192.168.1.1/admin/", "private"),
    ("http://100.64.0.1/", "shared"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
]


@pytest.mark.parametrize(("template", "word"), VECTORS)
def test_every_non_public_address_is_refused_before_anything_is_sent(strict, dns, template, word):
    dns["internal.attacker.test"] = [["127.0.0.1"]]
    dns["xn--bcher-kva.attacker.test"] = [["127.0.0.1"]]
    dns["metadata.attacker.test"] = [["169.254.169.254"]]
    with Receiver() as internal:
        result = send(template.format(port=internal.port))
        assert internal.requests == []
    assert not result.ok
    assert word in result.disable and result.response == result.disable


def test_a_name_with_one_private_answer_among_public_ones_is_refused(strict, dns):
    dns["mixed.attacker.test"] = [["93.184.216.34", "127.0.0.1"]]
    with Receiver() as internal:
        result = send(f"http://mixed.attacker.test:{internal.port}/hook")
        assert internal.requests == []
    assert "mixed.attacker.test resolves to 127.0.0.1" in result.disable


def test_plain_http_to_the_internet_is_refused(strict, dns):
    dns["public.example.test"] = [["93.184.216.34"]]
    result = send("http://public.example.test/hook")
    assert "https" in result.disable


def test_a_name_that_rebinds_never_reaches_the_private_address(settings, dns):
    """The first answer is "public" (127.0.0.2, allowed here), every later one private
    (127.0.0.1, on the same port): the connection goes to the address that was checked, and
    the next attempt, checked again, is refused."""
    with Receiver() as internal:
        try:
            public = Receiver(host="127.0.0.2", port=internal.port)
        except OSError:
            pytest.skip("127.0.0.2 cannot be bound here")
        with public:
            settings.CHANNELS_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.2/32"]
            settings.CHANNELS_TIMEOUT = 0.5
            dns["rebind.attacker.test"] = [["127.0.0.2"], ["127.0.0.1"]]
            url = f"http://rebind.attacker.test:{internal.port}/hook"
            first = send(url)
            second = send(url)
            assert internal.requests == []
            assert first.ok and len(public.requests) == 1
            assert public.requests[0]["headers"]["host"] == f"rebind.attacker.test:{internal.port}"
            assert not second.ok and "loopback" in second.disable


def test_redirects_are_not_followed(dns, settings):
    settings.CHANNELS_TIMEOUT = 0.5
    with Receiver() as internal:
        target = f"http://127.0.0.1:{internal.port}/hook"
        redirecting = Receiver(handler=lambda request, body: (307, b"", {"location": target}))
        with redirecting:
            settings.CHANNELS_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
            result = send(redirecting.url)
            assert len(redirecting.requests) == 1 and internal.requests == []
    assert not result.ok and result.status == 307 and not result.disable


class RawServer:
    """A TCP server answering every request with ``answer(server, connection)``; counts the
    bytes it managed to send."""

    def __init__(self, answer):
        self.answer = answer
        self.sent = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.done = threading.Event()

    def __enter__(self):
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.sock.close()

    def _accept(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            with contextlib.suppress(OSError):
                self.answer(self, conn)

    def write(self, conn, data: bytes):
        conn.sendall(data)
        self.sent += len(data)


def drip(head: bytes, seconds: float = 8.0):
    def answer(server, conn):
        server.write(conn, head)
        until = time.monotonic() + seconds
        while time.monotonic() < until and not server.done.is_set():
            server.write(conn, b"x")
            time.sleep(0.1)

    return answer


def test_a_status_line_and_headers_sent_a_byte_at_a_time_cannot_hold_a_worker(settings):
    settings.CHANNELS_TIMEOUT = 0.5  # each byte comes well within it; the whole does not
    with RawServer(drip(b"HTTP/1.1 200 OK\r\nX-Slow: ")) as server:
        started = time.monotonic()
        result = send(server.url)
        elapsed = time.monotonic() - started
    assert not result.ok and result.status is None
    assert elapsed < 3, elapsed  # the deadline is 2 x CHANNELS_TIMEOUT


def test_a_body_sent_a_byte_at_a_time_is_cut_at_the_deadline(settings):
    settings.CHANNELS_TIMEOUT = 0.5
    with RawServer(drip(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")) as server:
        started = time.monotonic()
        result = send(server.url)
        elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed
    assert result.status == 200 and "cut at the deadline" in result.response


def test_a_huge_answer_is_read_up_to_the_cap_only(settings):
    settings.CHANNELS_TIMEOUT = 5.0
    total = 64 * 1024 * 1024

    def huge(server, conn):
        server.write(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        block = b"a" * 65536
        for _ in range(total // len(block)):
            server.write(conn, block)

    with RawServer(huge) as server:
        result = send(server.url)
        time.sleep(0.2)
        sent = server.sent
    assert result.status == 200 and "cut at" in result.response
    assert len(result.response) <= get_setting("CHANNELS_RESPONSE_CHARS")
    # What the kernel buffers on both sides aside, the worker stopped reading at the cap.
    assert sent < total // 2, sent


def test_the_allowed_networks_setting_opens_exactly_those_networks(settings):
    settings.CHANNELS_TIMEOUT = 0.5
    with Receiver() as receiver:
        settings.CHANNELS_ALLOWED_PRIVATE_NETWORKS = ["10.0.0.0/8"]
        assert "loopback" in send(receiver.url).disable
        settings.CHANNELS_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1"]
        assert send(receiver.url).ok
        settings.CHANNELS_ALLOWED_PRIVATE_NETWORKS = "127.0.0.0/8"  # not a list: nothing allowed
        assert "loopback" in send(receiver.url).disable
        assert len(receiver.requests) == 1


def _certificates(name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, key, signer, ca, sans=()):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("Test CA", "Test CA", ca_key, ca_key, True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = build(name, "Test CA", key, ca_key, False, sans=[name])
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(pem).decode(), leaf.public_bytes(pem) + key_pem


def test_https_connects_to_the_checked_address_with_the_urls_name_for_sni_and_verification(
    settings, dns, monkeypatch, tmp_path
):
    pytest.importorskip("cryptography")
    from tailored_channels import outbound

    ca, chain = _certificates("hooks.example.test")
    (tmp_path / "leaf.pem").write_bytes(chain)
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(tmp_path / "leaf.pem")
    names = []
    served.sni_callback = lambda sock, name, context: names.append(name)
    monkeypatch.setattr(outbound, "_tls_context", lambda: ssl.create_default_context(cadata=ca))
    settings.CHANNELS_TIMEOUT = 2.0
    dns["hooks.example.test"] = [["127.0.0.1"]]
    dns["other.example.test"] = [["127.0.0.1"]]
    receiver = Receiver()
    receiver.server.socket = served.wrap_socket(receiver.server.socket, server_side=True)
    with receiver:
        result = send(f"https://hooks.example.test:{receiver.port}/hook")
        assert result.ok, result.response
        assert names == ["hooks.example.test"]
        assert receiver.requests[0]["headers"]["host"] == f"hooks.example.test:{receiver.port}"
        # The certificate is verified against the URL's name, not the address connected to.
        wrong = send(f"https://other.example.test:{receiver.port}/hook")
        assert not wrong.ok and not wrong.disable and "CERTIFICATE_VERIFY_FAILED" in wrong.response
        assert len(receiver.requests) == 1


# Mailchimp: its official client, with its host (a test or proxy option) and its server (pasted
# into the API's host name by the client) both typed in the admin.


def mailchimp(**options) -> Destination:
    pytest.importorskip("mailchimp_marketing")
    options = {"server": "us1", "list_id": "list1", "api_key": "k-us1", **options}
    return Destination(
        name="Mailchimp",
        kind="mailchimp",
        segments=["high-intent"],
        purpose="marketing",
        identifier="email",
        options=options,
    )


def tag(destination):
    from tailored_channels.backends.mailchimp import MailchimpBackend

    return MailchimpBackend(destination).send("msg_1", "segment.changes", [ITEM])


def test_mailchimp_requests_go_through_the_same_checks(strict):
    with Receiver() as internal:
        result = tag(mailchimp(host=f"http://127.0.0.1:{internal.port}/3.0"))
        assert internal.requests == []
    assert not result.ok and "loopback" in result.disable


def test_mailchimp_server_cannot_steer_the_client_elsewhere(strict):
    with Receiver() as internal:
        result = tag(mailchimp(server=f"127.0.0.1:{internal.port}/x#"))
        assert internal.requests == []
    assert not result.ok and "data centre" in result.disable


def test_mailchimp_redirects_are_not_followed(settings):
    settings.CHANNELS_TIMEOUT = 0.5
    with Receiver() as internal:
        target = f"http://127.0.0.1:{internal.port}/3.0/lists/list1"
        api = Receiver(
            handler=lambda request, body: (301, b"", {"location": target}), host="127.0.0.2"
        )
        with api:
            settings.CHANNELS_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.2/32"]
            result = tag(mailchimp(host=api.url.replace("/hook", "/3.0")))
            assert len(api.requests) == 1 and internal.requests == []
    assert not result.ok and result.status == 301


# The admin and the delivery log.


@pytest.mark.services
@pytest.mark.django_db
def test_a_refused_address_disables_the_destination_with_the_reason_in_the_admin(strict, client):
    from .test_propagation import manager

    with Receiver() as internal:
        destination = Destination.objects.create(
            name="Old", kind="webhook", url=internal.url, purpose="marketing"
        )
        delivery = Delivery.objects.create(
            destination=destination,
            type="segment.changes",
            items=[ITEM],
            next_attempt_at=timezone.now(),
        )
        from tailored_channels.delivery import deliver

        deliver(destination.pk)
        assert internal.requests == []
    destination.refresh_from_db()
    delivery.refresh_from_db()
    assert not destination.enabled and "127.0.0.1 is a loopback address" in (
        destination.disabled_reason
    )
    assert delivery.attempts == 1 and "loopback" in delivery.response
    manager(client)
    listing = client.get("/admin/channels/destinations/").content.decode()
    assert "127.0.0.1 is a loopback address" in listing
    log = client.get(f"/admin/channels/deliveries/inspect/{delivery.pk}/").content.decode()
    assert "127.0.0.1 is a loopback address" in log


def destination_form(**fields):
    return {
        "name": "Email tool",
        "kind": "webhook",
        "enabled": "on",
        "segments": ["high-intent"],
        "events": ["entered", "exited", "withdrawn", "erased"],
        "purpose": "marketing",
        "identifier": "keyed_hash",
        "mode": "events",
        "url": "https://hooks.example.test/",
        "secrets": "whsec_" + "A" * 32,
        "options": "{}",
        "batch_size": "500",
        **fields,
    }


@pytest.mark.services
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"url": "http://169.254.169.254/latest/meta-data/"}, "link-local"),
        ({"url": "https://internal.attacker.test/hook"}, "internal.attacker.test resolves to"),
        ({"url": "http://hooks.example.test/"}, "use an https URL"),
        (
            {
                "kind": "mailchimp",
                "identifier": "email",
                "url": "",
                "options": '{"server": "127.0.0.1:6379/#", "list_id": "l1", "api_key": "k"}',
            },
            "data centre",
        ),
        (
            {
                "kind": "mailchimp",
                "identifier": "email",
                "url": "",
                "options": '{"server": "us1", "list_id": "l1", "api_key": "k", '
                '"host": "http://10.1.2.3/3.0"}',
            },
            "10.1.2.3 is a private address",
        ),
    ],
)
def test_the_admin_form_refuses_a_destination_it_may_not_reach(strict, dns, client, fields, error):
    from tests.builders import segment

    from .test_propagation import manager

    dns["internal.attacker.test"] = [["127.0.0.1"]]
    dns["hooks.example.test"] = [["93.184.216.34"]]
    segment("high-intent")
    manager(client)
    answer = client.post("/admin/channels/destinations/new/", destination_form(**fields))
    assert answer.status_code == 200
    assert error in answer.content.decode()
    assert not Destination.objects.exists()
    # The same form with a public https receiver is saved.
    answer = client.post("/admin/channels/destinations/new/", destination_form())
    assert answer.status_code == 302, answer.content.decode()[:2000]


# The allowlist's own checks, and the address rules themselves.


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["10.0.0.0/8", "::1", "127.0.0.1"], []),
        ("10.0.0.0/8", ["tailored_channels.E003"]),
        (["10.0.0.0/8", "intranet"], ["tailored_channels.E003"]),
        (["0.0.0.0/0"], ["tailored_channels.E004"]),
        (["169.254.0.0/16"], ["tailored_channels.E004"]),
        (["fd00::/8"], ["tailored_channels.E004"]),
    ],
)
def test_a_misconfigured_allowlist_is_a_system_check(settings, value, expected):
    from tailored_channels import checks

    settings.CHANNELS_ALLOWED_PRIVATE_NETWORKS = value
    assert [m.id for m in checks.check_allowed_networks()] == expected


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.216.34", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),  # noqa: S104
        ("::", "unspecified"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("100.64.1.1", "shared (carrier-grade NAT)"),
        ("192.0.2.1", "private"),  # documentation: never a receiver
        ("239.1.1.1", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("::ffff:10.0.0.1", "private (IPv4 10.0.0.1 inside IPv6)"),
        ("::ffff:93.184.216.34", None),
        ("2002:7f00:1::", "loopback (IPv4 127.0.0.1 inside IPv6)"),
        ("64:ff9b::a9fe:a9fe", "link-local (IPv4 169.254.169.254 inside IPv6)"),
        ("fec0::1", "site-local"),
    ],
)
def test_address_kinds(address, kind):
    from tailored_channels import addresses

    assert addresses.kind(ipaddress.ip_address(address)) == kind


def test_an_ipv4_mapped_address_inside_an_allowed_network_is_allowed():
    from tailored_channels import addresses

    networks = addresses.parse_networks(["127.0.0.0/8"])
    assert addresses.refusal(ipaddress.ip_address("::ffff:127.0.0.1"), networks) is None
    assert addresses.refusal(ipaddress.ip_address("::ffff:10.0.0.1"), networks)


def test_an_answer_without_a_length_sent_slowly_is_cut_at_the_deadline_too(settings):
    settings.CHANNELS_TIMEOUT = 0.5
    with RawServer(drip(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")) as server:
        started = time.monotonic()
        result = send(server.url)
        elapsed = time.monotonic() - started
    assert elapsed < 3, elapsed
    assert result.status == 200 and "cut at the deadline" in result.response
