-- ===========================================================================
-- 52: progress of bulk encoding runs, watched from any session (src/progress.c)
-- ===========================================================================
-- A table of per-backend entries in shared memory, in the manner of
-- pg_stat_progress_create_index (PostgreSQL 15 has no progress command that
-- an extension could use).  colpali_embed_images and colpali-ingest report
-- after every batch; anyone may report their own session's run.

CREATE FUNCTION colpali_progress_report(tbl regclass, phase text,
	total bigint, done bigint, failed bigint, batch_size integer)
RETURNS void
AS 'MODULE_PATHNAME', 'colpali_progress_report'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION colpali_progress_report(regclass, text, bigint, bigint, bigint, integer) IS
'publishes this session''s bulk encoding run in colpali_progress (total NULL when unknown); the entry stays until colpali_progress_end(), the end of the session, or a failing transaction';

CREATE FUNCTION colpali_progress_end()
RETURNS void
AS 'MODULE_PATHNAME', 'colpali_progress_end'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION colpali_progress_end() IS
'removes this session''s entry from colpali_progress';

CREATE FUNCTION colpali_progress(
	OUT pid integer, OUT datid oid, OUT relid oid, OUT phase text,
	OUT batch_size integer, OUT images_total bigint, OUT images_done bigint,
	OUT images_failed bigint, OUT started timestamptz, OUT updated timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'colpali_progress'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION colpali_progress() IS
'one row per session with a bulk encoding run in progress; other roles'' runs show only pid and datid unless the caller has pg_read_all_stats';

CREATE VIEW colpali_progress AS
SELECT p.pid, p.datid, d.datname, p.relid, p.phase, p.batch_size,
	   p.images_total, p.images_done, p.images_failed,
	   p.started, p.updated,
	   round((p.images_done / nullif(extract(epoch FROM p.updated - p.started), 0))::numeric, 3)
		   AS images_per_second,
	   CASE WHEN p.images_done > 0 AND p.images_total IS NOT NULL THEN
		   (p.updated - p.started) * (greatest(p.images_total - p.images_done - p.images_failed, 0)::double precision
									  / p.images_done)
	   END AS eta
FROM colpali_progress() p LEFT JOIN pg_catalog.pg_database d ON d.oid = p.datid;

COMMENT ON VIEW colpali_progress IS
'bulk encoding runs in progress (colpali_embed_images, colpali-ingest), one row per session, updated after every batch; eta assumes the rate so far';

GRANT SELECT ON colpali_progress TO PUBLIC;
