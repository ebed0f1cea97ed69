-- Entmoot's tables as the runbook names them. GEOMETRY_TYPE is PostGIS's geometry(Polygon, 4326), as in Entmoot;
-- where PostGIS is not installed, the built-in `box` type (a real GiST operator class) behind SQL stand-ins for
-- ST_MakeEnvelope and ST_Intersects (spatial_fallback.sql), so the same queries and the same GIST index hold.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

CREATE TABLE projects (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL,
    boundary    GEOMETRY_TYPE NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE buildings (
    id          bigserial PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id),
    kind        text NOT NULL,
    geom        GEOMETRY_TYPE NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_buildings_location ON buildings USING GIST (geom);
CREATE INDEX idx_buildings_project ON buildings (project_id);

CREATE TABLE optimizations (
    id          bigserial PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id),
    score       double precision NOT NULL,
    layout      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE optimization_jobs (
    id            bigserial PRIMARY KEY,
    project_id    bigint NOT NULL REFERENCES projects (id),
    status        text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    completed_at  timestamptz,
    error         text
);
CREATE INDEX idx_optimization_jobs_status ON optimization_jobs (status, created_at);

-- Monthly Maintenance [4] moves finished jobs older than 90 days here.
CREATE TABLE optimization_jobs_archive (LIKE optimization_jobs INCLUDING CONSTRAINTS);
ALTER TABLE optimization_jobs_archive ADD PRIMARY KEY (id);

-- Written every second by the sandbox agent so that replica lag is measurable on an idle system.
CREATE TABLE sandbox_heartbeat (id int PRIMARY KEY, beat_at timestamptz NOT NULL);
INSERT INTO sandbox_heartbeat VALUES (1, now());

INSERT INTO projects (name, boundary)
SELECT 'site-' || g, ST_MakeEnvelope(g * 100, 0, g * 100 + 90, 90, 4326) FROM generate_series(1, 200) g;

INSERT INTO buildings (project_id, kind, geom)
SELECT 1 + (g % 200), (ARRAY['residential', 'commercial', 'parking', 'green'])[1 + g % 4],
       ST_MakeEnvelope((g % 200) * 100 + (g % 9) * 10, (g / 200 % 9) * 10,
                       (g % 200) * 100 + (g % 9) * 10 + 8, (g / 200 % 9) * 10 + 8, 4326)
FROM generate_series(1, 20000) g;

INSERT INTO optimizations (project_id, score, layout, created_at)
SELECT 1 + (g % 200), random(), jsonb_build_object('buildings', g % 50), now() - make_interval(hours => g % 2000)
FROM generate_series(1, 2000) g;

INSERT INTO optimization_jobs (project_id, status, created_at, started_at, completed_at)
SELECT 1 + (g % 200), 'completed', now() - make_interval(mins => g * 7),
       now() - make_interval(mins => g * 7) + interval '2 seconds', now() - make_interval(mins => g * 7) + interval '40 seconds'
FROM generate_series(1, 5000) g;
