-- ---------------------------------------------------------------------------
-- Bulk encoding and encoder statistics (src/encode.c, src/stats.c,
-- src/worker.c)
-- ---------------------------------------------------------------------------

CREATE FUNCTION colpali_images(bytea[]) RETURNS multivector[]
	AS 'MODULE_PATHNAME', 'colpali_images'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 1000000;

COMMENT ON FUNCTION colpali_images(bytea[]) IS
'embeds many page images in batches of colpali.max_batch; element i of the result belongs to element i of the argument (NULL stays NULL)';

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
