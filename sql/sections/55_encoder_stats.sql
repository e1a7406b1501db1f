-- ---------------------------------------------------------------------------
-- Encoder statistics (src/stats.c)
-- ---------------------------------------------------------------------------
-- Readable by every role, like PostgreSQL's own statistics views: the
-- superuser-only model path is NULL for roles that may not read the setting.

CREATE FUNCTION colpali_stats(
	OUT mode text,
	OUT device text,
	OUT model text,
	OUT worker_pid integer,
	OUT queue_depth integer,
	OUT requests bigint,
	OUT batches bigint,
	OUT items bigint,
	OUT max_batch_items bigint,
	OUT errors bigint,
	OUT mean_latency_ms double precision,
	OUT p99_latency_ms double precision,
	OUT worker_starts bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'colpali_stats'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION colpali_stats() IS
'encoder statistics: the background worker''s (shared by all sessions) when it is used, else this session''s in-process calls';

CREATE VIEW colpali_stats AS SELECT * FROM colpali_stats();

COMMENT ON VIEW colpali_stats IS
'one row of encoder statistics, see colpali_stats()';

GRANT SELECT ON colpali_stats TO PUBLIC;
