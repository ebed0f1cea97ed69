"""Host and certificate remediations: changes to a machine or a certificate that a person makes. Each is a plan with
the exact commands, written for the environment's hosts and paths; none of them acts."""

from entmoot_ops.remediation import RemediationContext, remediation


def _restore_reach(ctx: RemediationContext) -> list[str]:
    return [
        "from the on-call host, for each endpoint the failure names: getent ahosts <host> (DNS), "
        "then timeout 3 bash -c '</dev/tcp/<host>/<port>' && echo open (TCP)",
        "no DNS answer: cat /etc/resolv.conf; resolvectl status (a VPN or VPC resolver that is not in use)",
        "DNS but no TCP: the security group of the endpoint must allow the on-call host's address on that port "
        "(aws ec2 describe-security-groups --group-ids <sg> --query 'SecurityGroups[0].IpPermissions'); "
        "a bastion also needs its own outbound rule",
    ]


def _sync_clock(ctx: RemediationContext) -> list[str]:
    return [
        "on the host: timedatectl status (NTP service active? System clock synchronized?)",
        "chrony: chronyc tracking; chronyc sources -v; force a step: sudo chronyc makestep",
        "systemd-timesyncd: sudo timedatectl set-ntp true; sudo systemctl restart systemd-timesyncd",
        "on EC2 use the Amazon Time Sync Service: 'server 169.254.169.123 prefer iburst' in /etc/chrony/chrony.conf",
    ]


def _install_tools(ctx: RemediationContext) -> list[str]:
    wanted = ", ".join(f"{name} >= {version}" for name, version in ctx.env.hosts.tools.items())
    return [
        f"needed: {wanted}",
        "Debian/Ubuntu: sudo apt-get install -y awscli postgresql-client redis-tools jq curl "
        "(Debian 12's awscli is 2.9; elsewhere the AWS CLI v2 installer: `aws logs tail` needs v2)",
        "Amazon Linux: sudo dnf install -y awscli-2 postgresql15 redis6 jq curl",
        "check what the PATH finds: command -v aws psql redis-cli jq curl; aws --version",
    ]


def _free_disk(ctx: RemediationContext) -> list[str]:
    paths = " ".join(ctx.env.hosts.disk_paths)
    return [
        f"what fills it: df -h {paths}; df -i {paths}; sudo du -xh --max-depth=2 {paths} | sort -h | tail -20",
        "old reports and Allure results: rm -rf reports/allure-results.* older than the incident reviews need",
        "journal and package caches: sudo journalctl --vacuum-size=200M; sudo apt-get clean",
        "inodes exhausted: many small files (find <dir> -xdev -type f | cut -d/ -f2,3 | sort | uniq -c | sort -n | tail)",
    ]


def _start_service(ctx: RemediationContext) -> list[str]:
    return [
        "on the host: systemctl status postgresql@<version>-main (or redis-server); journalctl -u <unit> -n 50",
        "not running: sudo systemctl start <unit>; it stops again: read its log for the cause (disk full, config error)",
        "running but not listening on the port: listen_addresses / port in postgresql.conf; bind / port in redis.conf",
        "see who listens: sudo ss -ltnp",
    ]


def _secure_postgres(ctx: RemediationContext) -> list[str]:
    return [
        "ssl: in postgresql.conf set ssl = on, ssl_cert_file and ssl_key_file (key 0600, owned by postgres); "
        "then SELECT pg_reload_conf(); and confirm with SHOW ssl;",
        "trust on a network line: change its method in pg_hba.conf to scram-sha-256 (set each role's password first: "
        "\\password <role> in psql), then SELECT pg_reload_conf();",
        "confirm: SELECT type, database, user_name, address, auth_method FROM pg_hba_file_rules WHERE auth_method = 'trust';",
    ]


def _secure_redis(ctx: RemediationContext) -> list[str]:
    return [
        "in redis.conf: requirepass <a long random secret> (openssl rand -base64 32) and protected-mode yes",
        "apply without a restart: redis-cli CONFIG SET requirepass '<secret>'; redis-cli -a '<secret>' CONFIG SET protected-mode yes",
        "give the API the secret first (its task definition's secret), or it loses Redis with the change",
    ]


def _renew_certificate(ctx: RemediationContext) -> list[str]:
    return [
        "which certificate: openssl s_client -connect <host>:443 -servername <host> </dev/null 2>/dev/null "
        "| openssl x509 -noout -subject -ext subjectAltName -enddate -serial",
        "ACM-issued: aws acm describe-certificate --certificate-arn <arn> --query 'Certificate.RenewalSummary' "
        "(renewal waits on DNS validation: the CNAME in DomainValidationOptions must still exist)",
        "imported: renew with the issuer, then aws acm import-certificate --certificate-arn <arn> --certificate fileb://cert.pem "
        "--private-key fileb://key.pem --certificate-chain fileb://chain.pem (same ARN: the listener keeps it)",
        "wrong host name: request one for the API's name (aws acm request-certificate --domain-name <host> "
        "--validation-method DNS) and set it on the listener (aws elbv2 modify-listener --certificates CertificateArn=<arn>)",
    ]


for _id, _title, _section, _plan in (
    ("hosts.restore-reach", "Restore the on-call host's path to an endpoint", "important-endpoints-and-resources", _restore_reach),
    ("hosts.sync-clock", "Synchronise the host's clock", "morning-checklist-start-of-business-day", _sync_clock),
    ("hosts.install-tools", "Install the tools the runbook's steps call", "quick-commands", _install_tools),
    ("hosts.free-disk", "Free disk space or inodes on the host", "alert-disk-space-low-10", _free_disk),
    ("hosts.start-service", "Start the service, and make it listen where expected", "important-endpoints-and-resources", _start_service),
    ("hosts.secure-postgres", "Turn ssl on and remove trust from network lines", "important-endpoints-and-resources", _secure_postgres),
    ("hosts.secure-redis", "Set requirepass and protected-mode", "redis-connection-issues", _secure_redis),
    ("tls.renew-certificate", "Renew or replace the API's certificate", "important-endpoints-and-resources", _renew_certificate),
):
    remediation(_id, title=_title, section=_section, plan=_plan)
