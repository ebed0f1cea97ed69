"""The runbook sections a check or remediation may cite, by their GitHub heading anchors.

``tests/test_runbook_sections.py`` proves every anchor here is a heading of the runbook we were given.
"""

SECTIONS: dict[str, str] = {
    "quick-reference": "Quick Reference",
    "important-endpoints-and-resources": "Quick Reference > Important Endpoints and Resources",
    "quick-commands": "Quick Reference > Quick Commands",
    "morning-checklist-start-of-business-day": "Daily Operations > Morning Checklist",
    "evening-checklist-end-of-business-day": "Daily Operations > Evening Checklist",
    "deploying-a-new-version": "Common Operational Tasks > Deploying a New Version",
    "rolling-back-a-deployment": "Common Operational Tasks > Rolling Back a Deployment",
    "scaling-api-servers": "Common Operational Tasks > Scaling API Servers",
    "high-api-error-rate": "Troubleshooting > High API Error Rate",
    "high-database-cpu": "Troubleshooting > High Database CPU",
    "api-response-time-high": "Troubleshooting > API Response Time High",
    "redis-connection-issues": "Troubleshooting > Redis Connection Issues",
    "database-connection-pool-exhaustion": "Troubleshooting > Database Connection Pool Exhaustion",
    "alert-high-cpu-utilization-80": "Alert Response > High CPU Utilization (>80%)",
    "alert-error-rate-high-1": "Alert Response > Error Rate High (>1%)",
    "alert-database-replication-lag-60s": "Alert Response > Database Replication Lag (>60s)",
    "alert-disk-space-low-10": "Alert Response > Disk Space Low (<10%)",
    "horizontal-scaling-add-more-instances": "Scaling > Horizontal Scaling",
    "vertical-scaling-larger-instances": "Scaling > Vertical Scaling",
    "cache-scaling-redis": "Scaling > Cache Scaling (Redis)",
    "handoff-procedures": "On-Call > Handoff Procedures",
    "weekly-maintenance": "Database Maintenance > Weekly Maintenance",
    "monthly-maintenance": "Database Maintenance > Monthly Maintenance",
    "query-performance-tuning": "Database Maintenance > Query Performance Tuning",
    "connection-pool-tuning": "Performance Optimization > Connection Pool Tuning",
    "query-optimization": "Performance Optimization > Query Optimization",
    "caching-strategy": "Performance Optimization > Caching Strategy",
}


def link(base_url: str, anchor: str) -> str:
    return f"{base_url}#{anchor}"
