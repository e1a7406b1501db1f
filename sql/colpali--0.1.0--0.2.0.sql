/* colpali 0.1.0 -> 0.2.0 upgrade script */
\echo Use "ALTER EXTENSION colpali UPDATE TO '0.2.0'" to load this file. \quit


-- ---------------------------------------------------------------------------
-- Encoder glue: the statistics view is readable
-- by every role, like the function behind it (sql/sections/55_encoder_stats.sql);
-- colpali_embed_images reports an image that cannot be embedded and goes on
-- (sql/sections/50_bulk_encoding.sql, repeated here verbatim).
-- ---------------------------------------------------------------------------

GRANT SELECT ON colpali_stats TO PUBLIC;

CREATE OR REPLACE PROCEDURE colpali_embed_images(
	tbl regclass,
	image_column name,
	embedding_column name,
	batch_size integer DEFAULT 16)
	LANGUAGE plpgsql
	AS $colpali$
DECLARE
	total bigint;
	done bigint := 0;
	failed bigint := 0;
	n bigint;
	tids tid[];
	skipped tid[] := '{}';
	key_columns text;
	row_key text;
	tid_i tid;
BEGIN
	IF batch_size IS NULL OR batch_size < 1 THEN
		RAISE EXCEPTION 'batch_size must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s WHERE %I IS NULL AND %I IS NOT NULL',
							  tbl, embedding_column, image_column)
		INTO total;
	-- the primary key columns name a row in messages (else its ctid)
	SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.ord)
		INTO key_columns
		FROM pg_catalog.pg_index i,
			 LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord),
			 pg_catalog.pg_attribute a
		WHERE i.indrelid OPERATOR(pg_catalog.=) tbl AND i.indisprimary
		  AND a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.=) k.attnum;
	LOOP
		-- the next rows to do, locked until this batch commits
		EXECUTE pg_catalog.format($q$
			SELECT pg_catalog.array_agg(ctid) FROM (
				SELECT ctid FROM %1$s
				WHERE %3$I IS NULL AND %2$I IS NOT NULL
				  AND ctid OPERATOR(pg_catalog.<>) ALL ($1)
				LIMIT %4$s
				FOR UPDATE SKIP LOCKED) todo$q$,
			tbl, image_column, embedding_column, batch_size)
			INTO tids USING skipped;
		EXIT WHEN tids IS NULL;
		BEGIN
			-- encode the batch together, store
			EXECUTE pg_catalog.format($q$
				WITH todo AS (
					SELECT ctid AS tid, %2$I AS img FROM %1$s
					WHERE ctid OPERATOR(pg_catalog.=) ANY ($1)),
				enc AS (
					SELECT pg_catalog.unnest(pg_catalog.array_agg(tid)) AS tid,
						   pg_catalog.unnest(@extschema@.colpali_images(pg_catalog.array_agg(img))) AS emb
					FROM todo)
				UPDATE %1$s AS t SET %3$I = enc.emb FROM enc WHERE t.ctid OPERATOR(pg_catalog.=) enc.tid$q$,
				tbl, image_column, embedding_column)
				USING tids;
			GET DIAGNOSTICS n = ROW_COUNT;
		EXCEPTION WHEN invalid_binary_representation OR feature_not_supported
					   OR program_limit_exceeded THEN
			-- an image of the batch is bad: row by row, skipping the bad ones
			n := 0;
			FOREACH tid_i IN ARRAY tids LOOP
				BEGIN
					EXECUTE pg_catalog.format(
						'UPDATE %1$s SET %3$I = @extschema@.colpali_image(%2$I) WHERE ctid OPERATOR(pg_catalog.=) $1',
						tbl, image_column, embedding_column)
						USING tid_i;
					n := n + 1;
				EXCEPTION WHEN invalid_binary_representation OR feature_not_supported
							   OR program_limit_exceeded THEN
					IF key_columns IS NULL THEN
						row_key := pg_catalog.format('ctid %s', tid_i);
					ELSE
						EXECUTE pg_catalog.format('SELECT pg_catalog.format(%L, ROW(%s)::text) FROM %s WHERE ctid OPERATOR(pg_catalog.=) $1',
												  'key (' || key_columns || ')=%s', key_columns, tbl)
							INTO row_key USING tid_i;
					END IF;
					RAISE WARNING 'colpali_embed_images: skipped the row with %: %', row_key, SQLERRM;
					skipped := skipped OPERATOR(pg_catalog.||) tid_i;
					failed := failed + 1;
				END;
			END LOOP;
		END;
		done := done + n;
		RAISE NOTICE 'colpali_embed_images: % of % images embedded', done, total;
		COMMIT;
	END LOOP;
	IF failed > 0 THEN
		RAISE WARNING 'colpali_embed_images: % of % images could not be embedded', failed, total
			USING HINT = 'Their embeddings stay NULL; the warnings above name the rows.';
	END IF;
END
$colpali$;

COMMENT ON PROCEDURE colpali_embed_images(regclass, name, name, integer) IS
'fills embedding_column with colpali_image(image_column) for rows where it is NULL, batch_size rows per transaction, reporting progress as NOTICEs and each image that cannot be embedded as a WARNING (its row keeps a NULL embedding); CALL it outside an explicit transaction block';

-- ---------------------------------------------------------------------------
-- colpali_explain (src/explain.c): where a page matched a query
-- ---------------------------------------------------------------------------
CREATE FUNCTION colpali_explain(page multivector, query multivector,
	grid_width integer DEFAULT NULL, image_rows integer DEFAULT NULL,
	OUT query_row integer, OUT page_row integer, OUT score double precision,
	OUT patch_y integer, OUT patch_x integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'colpali_explain'
LANGUAGE C IMMUTABLE PARALLEL SAFE
COST 10000 ROWS 32;

COMMENT ON FUNCTION colpali_explain(multivector, multivector, integer, integer) IS
'for each query row (from 0): the best-matching page row, their dot product (the scores add up to maxsim(page, query)), and for image rows the patch position (patch_y, patch_x) in a grid grid_width patches wide whose first image_rows rows (default grid_width^2) are image rows; ColPali at 448 px: grid_width 32';

-- ---------------------------------------------------------------------------
-- Progress of bulk encoding (src/progress.c, sql/sections/52_progress.sql) and
-- colpali_embed_images publishing it and skipping any row that fails on its
-- own (sql/sections/50_bulk_encoding.sql, repeated here verbatim)
-- ---------------------------------------------------------------------------
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

CREATE OR REPLACE PROCEDURE colpali_embed_images(
	tbl regclass,
	image_column name,
	embedding_column name,
	batch_size integer DEFAULT 16)
	LANGUAGE plpgsql
	AS $colpali$
DECLARE
	total bigint;
	done bigint := 0;
	failed bigint := 0;
	n bigint;
	tids tid[];
	skipped tid[] := '{}';
	key_columns text;
	row_key text;
	tid_i tid;
	err_state text;
	err_message text;
	batch_first_state text;
	batch_same_state boolean;
	ever_embedded boolean := false;
	report boolean := true;
BEGIN
	IF batch_size IS NULL OR batch_size < 1 THEN
		RAISE EXCEPTION 'batch_size must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s WHERE %I IS NULL AND %I IS NOT NULL',
							  tbl, embedding_column, image_column)
		INTO total;
	BEGIN
		PERFORM @extschema@.colpali_progress_report(tbl, 'encoding', total, 0, 0, batch_size);
	EXCEPTION WHEN out_of_memory THEN
		-- no spare shared memory for the progress table (not preloaded)
		RAISE NOTICE 'colpali_embed_images: progress is not shown in colpali_progress: %', SQLERRM;
		report := false;
	END;
	-- the primary key columns name a row in messages (else its ctid)
	SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.ord)
		INTO key_columns
		FROM pg_catalog.pg_index i,
			 LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord),
			 pg_catalog.pg_attribute a
		WHERE i.indrelid OPERATOR(pg_catalog.=) tbl AND i.indisprimary
		  AND a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.=) k.attnum;
	LOOP
		-- the next rows to do, locked until this batch commits
		EXECUTE pg_catalog.format($q$
			SELECT pg_catalog.array_agg(ctid) FROM (
				SELECT ctid FROM %1$s
				WHERE %3$I IS NULL AND %2$I IS NOT NULL
				  AND ctid OPERATOR(pg_catalog.<>) ALL ($1)
				LIMIT %4$s
				FOR UPDATE SKIP LOCKED) todo$q$,
			tbl, image_column, embedding_column, batch_size)
			INTO tids USING skipped;
		EXIT WHEN tids IS NULL;
		BEGIN
			-- encode the batch together, store
			EXECUTE pg_catalog.format($q$
				WITH todo AS (
					SELECT ctid AS tid, %2$I AS img FROM %1$s
					WHERE ctid OPERATOR(pg_catalog.=) ANY ($1)),
				enc AS (
					SELECT pg_catalog.unnest(pg_catalog.array_agg(tid)) AS tid,
						   pg_catalog.unnest(@extschema@.colpali_images(pg_catalog.array_agg(img))) AS emb
					FROM todo)
				UPDATE %1$s AS t SET %3$I = enc.emb FROM enc WHERE t.ctid OPERATOR(pg_catalog.=) enc.tid$q$,
				tbl, image_column, embedding_column)
				USING tids;
			GET DIAGNOSTICS n = ROW_COUNT;
		EXCEPTION WHEN OTHERS THEN
			IF left(SQLSTATE, 2) IN ('53', '55', '57', '58', 'XX', '42', '25', '28', '08') THEN
				RAISE;		-- the run's error, not a row's
			END IF;
			-- a row of the batch is bad: row by row, skipping the bad ones
			IF report THEN
				PERFORM @extschema@.colpali_progress_report(tbl, 'encoding row by row', total, done, failed, batch_size);
			END IF;
			n := 0;
			batch_first_state := NULL;
			batch_same_state := true;
			FOREACH tid_i IN ARRAY tids LOOP
				BEGIN
					EXECUTE pg_catalog.format(
						'UPDATE %1$s SET %3$I = @extschema@.colpali_image(%2$I) WHERE ctid OPERATOR(pg_catalog.=) $1',
						tbl, image_column, embedding_column)
						USING tid_i;
					n := n + 1;
				EXCEPTION WHEN OTHERS THEN
					err_state := SQLSTATE;
					err_message := SQLERRM;
					IF left(err_state, 2) IN ('53', '55', '57', '58', 'XX', '42', '25', '28', '08') THEN
						RAISE;
					END IF;
					batch_same_state := batch_same_state
						AND (batch_first_state IS NULL OR batch_first_state = err_state);
					batch_first_state := coalesce(batch_first_state, err_state);
					IF key_columns IS NULL THEN
						row_key := pg_catalog.format('ctid %s', tid_i);
					ELSE
						EXECUTE pg_catalog.format('SELECT pg_catalog.format(%L, ROW(%s)::text) FROM %s WHERE ctid OPERATOR(pg_catalog.=) $1',
												  'key (' || key_columns || ')=%s', key_columns, tbl)
							INTO row_key USING tid_i;
					END IF;
					RAISE WARNING 'colpali_embed_images: skipped the row with %: %', row_key, err_message;
					skipped := skipped OPERATOR(pg_catalog.||) tid_i;
					failed := failed + 1;
				END;
			END LOOP;
			-- every row of the first batch failed alike, and not for its
			-- image: the table or the setup is at fault, not a row
			IF NOT ever_embedded AND n = 0 AND batch_same_state
			   AND pg_catalog.array_length(tids, 1) > 1
			   AND batch_first_state NOT IN ('22P03', '0A000', '54000') THEN
				RAISE EXCEPTION 'colpali_embed_images: every row of the first batch failed: %', err_message
					USING ERRCODE = batch_first_state;
			END IF;
		END;
		done := done + n;
		ever_embedded := ever_embedded OR n > 0;
		IF report THEN
			PERFORM @extschema@.colpali_progress_report(tbl, 'encoding', total, done, failed, batch_size);
		END IF;
		RAISE NOTICE 'colpali_embed_images: % of % images embedded', done, total;
		COMMIT;
	END LOOP;
	IF report THEN
		PERFORM @extschema@.colpali_progress_end();
	END IF;
	IF failed > 0 THEN
		RAISE WARNING 'colpali_embed_images: % of % images could not be embedded', failed, total
			USING HINT = 'Their embeddings stay NULL; the warnings above name the rows.';
	END IF;
END
$colpali$;

COMMENT ON PROCEDURE colpali_embed_images(regclass, name, name, integer) IS
'fills embedding_column with colpali_image(image_column) for rows where it is NULL, batch_size rows per transaction, reporting progress as NOTICEs and in the colpali_progress view, and each row that cannot be embedded as a WARNING (its row keeps a NULL embedding); CALL it outside an explicit transaction block';
