"""DICOM TLS inbound (BONEAGE_TLS_PORT), tested with dcmtk's storescu/echoscu `+tls` and
certificates made with openssl: plain TCP to the TLS port fails, TLS succeeds, with a CA set
a client without a certificate (or with one from another CA) is refused, and the allow-list
applies on both listeners."""

from __future__ import annotations

import socket

import pytest

from service.audit.tables import InstanceStatus
from tests.certificates import issue, make_ca
from tests.databases import only_backend
from tests.factory import write_image
from tests.peers import echoscu, free_port, storescu, wait_status


@pytest.fixture
def certificates(tmp_path):
    directory = tmp_path / "certs"
    ca = make_ca(directory)
    other_ca = make_ca(directory, "other-ca")
    return {"ca": ca[0], "server": issue(directory, ca, "server"),
            "client": issue(directory, ca, "client"),
            "stranger": issue(directory, other_ca, "stranger")}


def tls_args(certificates, client: str | None) -> tuple[str, ...]:
    """storescu/echoscu options: trust our CA, present `client`'s certificate (None:
    anonymous TLS, no certificate)."""
    trust = ("+cf", str(certificates["ca"]))
    if client is None:
        return ("+tla", *trust)
    cert, key = certificates[client]
    return ("+tls", str(key), str(cert), *trust)


# What TLS changes is the transport; the audit rows it leaves are the same on both backends
# (tests/integration/test_receive.py covers those on each).
pytestmark = [pytest.mark.dcmtk, only_backend("sqlite")]


def test_tls_listener_requires_tls_and_a_client_certificate(tmp_path, start_service,
                                                            certificates, backend):
    tls_port = free_port()
    cert, key = certificates["server"]
    service = start_service(BONEAGE_TLS_PORT=str(tls_port), BONEAGE_TLS_CERT_FILE=str(cert),
                            BONEAGE_TLS_KEY_FILE=str(key),
                            BONEAGE_TLS_CA_FILE=str(certificates["ca"]),
                            BONEAGE_ALLOWED_CALLERS="MODALITY,ECHOSCU")
    assert "listening for DICOM TLS" in service.log()
    image = tmp_path / "dx.dcm"
    write_image(image, seed=40)
    plain_to_tls = storescu(tls_port, image)
    assert plain_to_tls.returncode != 0  # no TLS, no association
    # A peer that connects and never starts its handshake does not hold up the others: the
    # handshake runs on the association's thread, not the accepting one.
    with socket.create_connection(("127.0.0.1", tls_port)):
        assert storescu(tls_port, image, extra=tls_args(certificates, "client")).returncode == 0
    assert echoscu(tls_port, extra=tls_args(certificates, "client")).returncode == 0
    assert storescu(tls_port, image, extra=tls_args(certificates, None)).returncode != 0
    assert storescu(tls_port, image, extra=tls_args(certificates, "stranger")).returncode != 0
    # The allow-list holds on the TLS listener too: an unknown calling AE is rejected.
    assert storescu(tls_port, image, aet="STRANGER",
                    extra=tls_args(certificates, "client")).returncode != 0
    assert storescu(service.port, image, aet="STRANGER").returncode != 0
    assert storescu(service.port, image).returncode == 0  # the plain listener still works
    rows = wait_status(backend.sessions(service.var_dir), 2, InstanceStatus.REJECTED,
                       InstanceStatus.DUPLICATE)
    assert [row.status for row in rows] == [InstanceStatus.REJECTED, InstanceStatus.DUPLICATE]
    assert service.process is not None and service.process.poll() is None


def test_tls_without_a_ca_accepts_anonymous_clients(tmp_path, start_service, certificates):
    tls_port = free_port()
    cert, key = certificates["server"]
    service = start_service(BONEAGE_TLS_PORT=str(tls_port), BONEAGE_TLS_CERT_FILE=str(cert),
                            BONEAGE_TLS_KEY_FILE=str(key))
    image = tmp_path / "dx.dcm"
    write_image(image, seed=41)
    assert storescu(tls_port, image, extra=tls_args(certificates, None)).returncode == 0
    assert storescu(tls_port, image).returncode != 0
    assert "client certificates required" not in service.log()
