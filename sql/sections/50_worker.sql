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

CREATE PROCEDURE colpali_embed_images(
	tbl regclass,
	image_column name,
	embedding_column name,
	batch_size integer DEFAULT 16)
	LANGUAGE plpgsql
	AS $colpali$
DECLARE
	total bigint;
	done bigint := 0;
	n bigint;
BEGIN
	IF batch_size IS NULL OR batch_size < 1 THEN
		RAISE EXCEPTION 'batch_size must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s WHERE %I IS NULL AND %I IS NOT NULL',
							  tbl, embedding_column, image_column)
		INTO total;
	LOOP
		-- one batch: lock the next rows to do, encode them together, store
		EXECUTE pg_catalog.format($q$
			WITH todo AS (
				SELECT ctid AS tid, %2$I AS img FROM %1$s
				WHERE %3$I IS NULL AND %2$I IS NOT NULL
				LIMIT %4$s
				FOR UPDATE SKIP LOCKED),
			enc AS (
				SELECT pg_catalog.unnest(pg_catalog.array_agg(tid)) AS tid,
					   pg_catalog.unnest(@extschema@.colpali_images(pg_catalog.array_agg(img))) AS emb
				FROM todo)
			UPDATE %1$s AS t SET %3$I = enc.emb FROM enc WHERE t.ctid OPERATOR(pg_catalog.=) enc.tid$q$,
			tbl, image_column, embedding_column, batch_size);
		GET DIAGNOSTICS n = ROW_COUNT;
		EXIT WHEN n = 0;
		done := done + n;
		RAISE NOTICE 'colpali_embed_images: % of % images embedded', done, total;
		COMMIT;
	END LOOP;
END
$colpali$;

COMMENT ON PROCEDURE colpali_embed_images(regclass, name, name, integer) IS
'fills embedding_column with colpali_image(image_column) for rows where it is NULL, batch_size rows per transaction, reporting progress as NOTICEs; CALL it outside an explicit transaction block';
