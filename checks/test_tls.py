"""The API's TLS certificate: what a client's handshake gets, and the ACM certificate the load balancer serves."""

import pytest

from entmoot_ops.check import check, evidence, expect
from entmoot_ops.probes import tls

SECTION = "important-endpoints-and-resources"


@pytest.mark.hosts
@pytest.mark.evening
@check(id="tls.api-certificate", title="The API's certificate is trusted, matches its host name, and has 14 days or more left",
       section=SECTION, severity="critical", remediation="tls.renew-certificate",
       depends=("api",))
def test_api_certificate(env):
    endpoints = tls.endpoints(env.clients)
    if not endpoints:
        pytest.skip("no HTTPS endpoint: api.url is plain HTTP and [tls] endpoints is empty")
    for url in endpoints:
        served = tls.served_at(env.clients, url)
        evidence(f"certificate of {served.endpoint}", served)
        expect(f"verification of {served.endpoint}'s certificate", served.problem or "verified", "==", "verified")
        expect(f"days left on {served.endpoint}'s certificate (until {served.not_after:%Y-%m-%d %H:%M} UTC)",
               round(served.days_left, 1), ">=", env.thresholds.tls_min_days, unit="days")


@pytest.mark.hosts
@pytest.mark.evening
@check(id="tls.acm-certificate", title="The load balancer's ACM certificates are issued, renewing, and the ones the API serves",
       section=SECTION, severity="high", remediation="tls.renew-certificate",
       depends=("aws", "api"))
def test_acm_certificate(env):
    arns = tls.listener_certificates(env.clients)
    if not arns:
        pytest.skip(f"the load balancer {env.config.alb.load_balancer} has no HTTPS listener with an ACM certificate")
    found = [tls.acm_certificate(env.clients, arn) for arn in arns]
    evidence("ACM certificates of the HTTPS listeners", found)
    for certificate in found:
        name = f"ACM certificate {certificate.domain} ({certificate.kind})"
        expect(f"status of {name}", certificate.status, "==", "ISSUED")
        if certificate.days_left is not None:
            expect(f"days left on {name}", round(certificate.days_left, 1), ">=", env.thresholds.tls_min_days, unit="days")
        if certificate.renewal_status is not None:  # ACM renews only what it issued; an imported one is a person's job
            expect(f"renewal of {name}{f' ({certificate.renewal_reason})' if certificate.renewal_reason else ''}",
                   certificate.renewal_status, "!=", "FAILED")
    endpoints = tls.endpoints(env.clients) if env.config.tls.served_by_alb else []
    for url in endpoints:
        served = tls.served_at(env.clients, url)
        expect(f"serial of the certificate {served.endpoint} serves, against the listeners' ACM certificates",
               served.serial, "in", [c.serial for c in found])
