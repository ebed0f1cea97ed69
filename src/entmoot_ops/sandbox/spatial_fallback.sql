-- Where PostGIS is not installed: the two PostGIS functions Entmoot's spatial queries use, over the built-in box
-- type. Both are plain SQL expressions that the planner inlines, so `ST_Intersects(geom, ST_MakeEnvelope(...))`
-- is planned as `geom && box` and uses the GiST index, as PostGIS's ST_Intersects does.
CREATE FUNCTION ST_MakeEnvelope(xmin float8, ymin float8, xmax float8, ymax float8, srid integer DEFAULT 0) RETURNS box
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT box(point(xmin, ymin), point(xmax, ymax))';
CREATE FUNCTION ST_Intersects(a box, b box) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS 'SELECT a && b';
