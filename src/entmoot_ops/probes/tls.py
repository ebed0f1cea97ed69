"""TLS certificates: the one an endpoint serves, read from a real handshake, and the ACM certificates the load
balancer's HTTPS listeners serve."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, UTC
from urllib.parse import urlsplit

from entmoot_ops.aws_conventions import serial_text
from entmoot_ops.check import touching
from entmoot_ops.clients import Clients
from entmoot_ops.iam import ANY, CERTIFICATES, needs
from entmoot_ops.probes import alb, measuring


@dataclass(frozen=True)
class Served:
    endpoint: str  # host:port
    verified: bool  # the chain is trusted and the certificate is valid for the host name, now
    problem: str | None  # why not, in OpenSSL's words: "certificate has expired", "Hostname mismatch, ..."
    names: tuple[str, ...]  # its subject alternative names
    not_after: datetime
    serial: str

    @property
    def days_left(self) -> float:
        return (self.not_after - datetime.now(UTC)).total_seconds() / 86400


def endpoints(clients: Clients) -> list[str]:
    """The HTTPS endpoints to read: ``[tls] endpoints``, or the API's URL when it is HTTPS."""
    configured = [clients.endpoint(reference, what="tls.endpoints") for reference in clients.env.tls.endpoints]
    return configured or ([clients.api_url] if clients.api_url.startswith("https://") else [])


def served_at(clients: Clients, url: str) -> Served:
    """:func:`served` once a run for each endpoint, with the environment's extra trust anchor and timeout."""
    reference = clients.env.tls.ca_file
    ca_file = clients.endpoint(reference, what="tls.ca_file") if reference else None
    touching("api")
    return clients.remember(("tls.served", url), lambda: served(url, ca_file=ca_file, timeout=clients.env.timeouts.connect_seconds))


def served(url: str, *, ca_file: str | None, timeout: float) -> Served:
    """Two handshakes with ``url``'s host: one that verifies as a client would (system CAs, plus ``ca_file``),
    one that only reads the certificate, so that a certificate that fails verification is still described."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    endpoint = f"{host}:{port}"
    verifying = ssl.create_default_context(cafile=ca_file)
    reading = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    reading.check_hostname, reading.verify_mode = False, ssl.CERT_NONE

    def handshake(context: ssl.SSLContext) -> tuple[bytes, str | None]:
        """The certificate's DER, or why verification refused it."""
        with measuring(f"TLS {endpoint}"), socket.create_connection((host, port), timeout=timeout) as raw:
            try:
                with context.wrap_socket(raw, server_hostname=host) as tls:
                    return tls.getpeercert(binary_form=True) or b"", None
            except ssl.SSLCertVerificationError as exc:
                return b"", exc.verify_message

    # Here, not at the top: cryptography's import is a twentieth of a fresh run's start (76 ms), and only the
    # evening's TLS checks read a certificate.
    from cryptography import x509

    _, problem = handshake(verifying)
    certificate = x509.load_der_x509_certificate(handshake(reading)[0])
    try:
        names = tuple(str(n.value) for n in certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        names = ()
    return Served(endpoint=endpoint, verified=problem is None, problem=problem, names=names,
                  not_after=certificate.not_valid_after_utc, serial=serial_text(certificate.serial_number))


@needs("elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeListeners",
       "elasticloadbalancing:DescribeListenerCertificates", resources=ANY)
def listener_certificates(clients: Clients) -> list[str]:
    """The ACM certificate ARNs the load balancer's HTTPS and TLS listeners serve (default and SNI)."""
    balancer = alb.load_balancer_arn(clients)
    elb = clients.aws("elbv2")
    with measuring("AWS ELBv2"):
        listeners = [listener for page in elb.get_paginator("describe_listeners").paginate(LoadBalancerArn=balancer)
                     for listener in page["Listeners"] if listener["Protocol"] in ("HTTPS", "TLS")]
        arns = [c["CertificateArn"] for listener in listeners
                for c in elb.describe_listener_certificates(ListenerArn=listener["ListenerArn"])["Certificates"]]
    return list(dict.fromkeys(arn for arn in arns if ":acm:" in arn))


@dataclass(frozen=True)
class AcmCertificate:
    arn: str
    domain: str
    status: str  # ISSUED, EXPIRED, REVOKED, ...
    kind: str  # AMAZON_ISSUED (ACM renews it), IMPORTED (a person does), PRIVATE
    not_after: datetime | None
    serial: str
    renewal_status: str | None  # of an AMAZON_ISSUED one: PENDING_AUTO_RENEWAL, SUCCESS, FAILED, ...
    renewal_reason: str | None

    @property
    def days_left(self) -> float | None:
        return None if self.not_after is None else (self.not_after - datetime.now(UTC)).total_seconds() / 86400


@needs("acm:DescribeCertificate", resources=CERTIFICATES)
def acm_certificate(clients: Clients, arn: str) -> AcmCertificate:
    with measuring("AWS ACM"):
        found = clients.aws("acm").describe_certificate(CertificateArn=arn)["Certificate"]
        renewal = found.get("RenewalSummary") or {}
        return AcmCertificate(arn=arn, domain=found["DomainName"], status=found["Status"], kind=found["Type"],
                              not_after=found.get("NotAfter"), serial=found.get("Serial", ""),
                              renewal_status=renewal.get("RenewalStatus"), renewal_reason=renewal.get("RenewalStatusReason"))
