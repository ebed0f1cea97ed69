"""The embedded sandbox: an Entmoot-like environment on 127.0.0.1 (moto, PostgreSQL primary + replica,
Redis, an async API, a metrics agent) with a fault-control interface. See DESIGN.md §2."""
