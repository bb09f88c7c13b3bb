"""Delivery over TLS to a receiver on 127.0.0.1: the POST connects to the checked address
but verifies the certificate against the URL's name (SNI and hostname check), and an
untrusted or misnamed certificate is a failed attempt (tls_error), never a POST."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from transfers import services as ledger
from webhooks import services
from webhooks.delivery import lane_send
from webhooks.dispatch import dispatch_pass
from webhooks.models import WebhookDelivery
from webhooks.tests.conftest import verify
from webhooks.tests.receiver import Receiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("local_webhooks")]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, issuer: str, key, signer, *, ca: bool, names: list[str]) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        alternatives = [x509.DNSName(n) for n in names]
        builder = builder.add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture(params=["localhost"])
def tls(request, tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A private CA, and a server certificate it issued for the name in `param`."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test CA", "Test CA", ca_key, ca_key, ca=True, names=[])
    server = _certificate(request.param, "Test CA", server_key, ca_key, ca=False, names=[request.param])
    pem = serialization.Encoding.PEM
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "server.pem", "key": tmp_path / "server.key"}
    files["ca"].write_bytes(ca.public_bytes(pem))
    files["cert"].write_bytes(server.public_bytes(pem))
    files["key"].write_bytes(
        server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    yield files


@pytest.fixture
def https_receiver(tls) -> Iterator[Receiver]:
    receiver = Receiver().start()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls["cert"], tls["key"])
    server = receiver._server
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield receiver
    receiver.stop()


def deliver_one(make_user, make_wallet, url: str) -> tuple[WebhookDelivery, str]:
    alice = make_user("alice")
    wallet = make_wallet(alice)
    endpoint, secret = services.endpoint_create(owner_id=alice.id, url=url, event_types=["*"])
    ledger.deposit_create(wallet_id=wallet.id, owner_id=alice.id, amount=42)
    leased, _ = dispatch_pass()
    for delivery_id in leased:
        lane_send(delivery_id)
    return WebhookDelivery.objects.get(endpoint=endpoint), secret


def test_a_certificate_for_the_urls_name_from_a_trusted_ca_is_delivered_to(
    settings, tls, https_receiver, make_user, make_wallet
):
    settings.WEBHOOK_CA_BUNDLE = str(tls["ca"])
    delivery, secret = deliver_one(make_user, make_wallet, f"https://localhost:{https_receiver.port}/hooks")

    assert (delivery.status, delivery.last_status_code) == ("succeeded", 200)
    item = https_receiver.received[0]
    assert item.headers["host"] == f"localhost:{https_receiver.port}"
    assert verify(secret, item.headers, item.body)


def test_an_untrusted_certificate_is_a_failed_attempt(https_receiver, make_user, make_wallet):
    delivery, _ = deliver_one(make_user, make_wallet, f"https://localhost:{https_receiver.port}/hooks")

    assert (delivery.status, delivery.last_error) == ("pending", "tls_error")
    assert https_receiver.received == []


@pytest.mark.parametrize("tls", ["shop.example"], indirect=True)
def test_a_certificate_for_another_name_is_a_failed_attempt(
    settings, tls, https_receiver, make_user, make_wallet
):
    settings.WEBHOOK_CA_BUNDLE = str(tls["ca"])  # trusted, but issued for shop.example, not localhost
    delivery, _ = deliver_one(make_user, make_wallet, f"https://localhost:{https_receiver.port}/hooks")

    assert (delivery.status, delivery.last_error) == ("pending", "tls_error")
    assert https_receiver.received == []
