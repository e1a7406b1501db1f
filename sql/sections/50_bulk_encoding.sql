-- ---------------------------------------------------------------------------
-- Bulk encoding: fill an embedding column in batches (uses colpali_images)
-- ---------------------------------------------------------------------------
-- One transaction per batch.  A batch that fails is encoded again row by
-- row, each row in its own subtransaction: a row that fails on its own (an
-- undecodable, unsupported or oversized image; a constraint, trigger or
-- type error raised by its UPDATE) is reported in a WARNING that names its
-- key, keeps a NULL embedding and is not tried again in this run, and every
-- other row is embedded.  Errors of the run rather than of a row end it: no
-- model, cancel, a worker or I/O failure (SQLSTATE classes 53, 55, 57, 58,
-- XX and 42, 25, 28, 08), and any non-image error that every row of the
-- first batch gives while nothing has been embedded yet (a column of the
-- wrong dimension, say).  The batches committed before it are kept.
-- Progress is published in colpali_progress after every batch.

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
