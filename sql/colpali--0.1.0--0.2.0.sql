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
-- Retrieval quality in SQL (sql/sections/70_evaluation.sql): runs, trec_eval
-- measures, colpali_evaluate; the same text as the section
-- A run is a table (query_id, page_id, score); qrels is a table (query_id,
-- page_id, relevance) as ViDoRe's qrels.  The measures are trec_eval's, as
-- pytrec_eval and ViDoRe's evaluation compute them: a query's run is ranked
-- by score descending, ties by page id (as text, byte order) descending;
-- nDCG@k has gain = relevance, discount log2(rank + 1) and the ideal DCG of
-- the query's qrels; recall@k and MRR@k count relevance >= 1 as relevant.
-- Queries that appear in both the run and qrels are averaged.

CREATE FUNCTION colpali_ir_metrics_by_query(run regclass, qrels regclass, k integer,
	OUT query_id text, OUT ndcg double precision, OUT recall double precision,
	OUT mrr double precision)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
AS $colpali$
BEGIN
	IF k IS NULL OR k < 1 THEN
		RAISE EXCEPTION 'colpali_ir_metrics: k must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY EXECUTE pg_catalog.format($q$
		WITH rel AS (
			SELECT r.query_id::text AS q, r.page_id::text AS d,
				   pg_catalog.max(r.relevance::double precision) AS g
			FROM %2$s r GROUP BY 1, 2),
		ranked AS (
			SELECT x.q, x.d, pg_catalog.row_number() OVER (PARTITION BY x.q
					ORDER BY x.s DESC, x.d COLLATE "C" DESC) AS rk
			FROM (SELECT t.query_id::text AS q, t.page_id::text AS d,
						 t.score::double precision AS s
				  FROM %1$s t) x
			WHERE x.q IN (SELECT rel.q FROM rel)),
		top AS (
			SELECT ranked.q, ranked.rk, COALESCE(rel.g, 0) AS g
			FROM ranked LEFT JOIN rel USING (q, d)
			WHERE ranked.rk <= $1),
		ideal AS (
			SELECT rel.q, rel.g, pg_catalog.row_number() OVER (PARTITION BY rel.q
					ORDER BY rel.g DESC) AS rk
			FROM rel WHERE rel.g > 0),
		per_query AS (
			SELECT q,
				(SELECT COALESCE(pg_catalog.sum(top.g / (pg_catalog.ln((top.rk + 1)::float8) / pg_catalog.ln(2.0::float8))), 0)
				 FROM top WHERE top.q = qs.q AND top.g > 0) AS dcg,
				(SELECT COALESCE(pg_catalog.sum(ideal.g / (pg_catalog.ln((ideal.rk + 1)::float8) / pg_catalog.ln(2.0::float8))), 0)
				 FROM ideal WHERE ideal.q = qs.q AND ideal.rk <= $1) AS idcg,
				(SELECT pg_catalog.count(*) FROM top WHERE top.q = qs.q AND top.g >= 1) AS hits,
				(SELECT pg_catalog.count(*) FROM rel WHERE rel.q = qs.q AND rel.g >= 1) AS nrel,
				(SELECT pg_catalog.min(top.rk) FROM top WHERE top.q = qs.q AND top.g >= 1) AS first
			FROM (SELECT DISTINCT ranked.q FROM ranked) qs)
		SELECT q,
			CASE WHEN idcg > 0 THEN dcg / idcg ELSE 0 END,
			CASE WHEN nrel > 0 THEN hits::float8 / nrel ELSE 0 END,
			CASE WHEN first IS NOT NULL THEN 1.0::float8 / first ELSE 0 END
		FROM per_query ORDER BY q COLLATE "C"
		$q$, run, qrels) USING k;
END
$colpali$;

COMMENT ON FUNCTION colpali_ir_metrics_by_query(regclass, regclass, integer) IS
'trec_eval''s nDCG@k (ndcg_cut_k), recall@k (recall_k) and MRR@k (recip_rank of the run cut at k) of each query, for a run table (query_id, page_id, score) and a qrels table (query_id, page_id, relevance); ties in score are ranked by page id as text descending, as trec_eval does';

CREATE FUNCTION colpali_ir_metrics(run regclass, qrels regclass, k integer,
	OUT queries bigint, OUT ndcg double precision, OUT recall double precision,
	OUT mrr double precision)
RETURNS record
LANGUAGE sql STABLE
AS $colpali$
	SELECT pg_catalog.count(*), pg_catalog.avg(m.ndcg), pg_catalog.avg(m.recall), pg_catalog.avg(m.mrr)
	FROM colpali_ir_metrics_by_query(run, qrels, k) m
$colpali$;

COMMENT ON FUNCTION colpali_ir_metrics(regclass, regclass, integer) IS
'mean nDCG@k, recall@k and MRR@k over the queries present in both the run and qrels (see colpali_ir_metrics_by_query)';

CREATE FUNCTION colpali_retrieve(corpus regclass, queries regclass, k integer,
	method text DEFAULT 'exact',
	corpus_id_column name DEFAULT 'id', corpus_embedding_column name DEFAULT 'emb',
	query_id_column name DEFAULT 'id', query_embedding_column name DEFAULT 'emb',
	OUT query_id text, OUT page_id text, OUT score double precision,
	OUT rank integer)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
AS $colpali$
DECLARE
	has_index boolean;
	old_seqscan text;
	old_sort text;
BEGIN
	IF k IS NULL OR k < 1 THEN
		RAISE EXCEPTION 'colpali_retrieve: k must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF method IS NULL OR method NOT IN ('exact', 'index') THEN
		RAISE EXCEPTION 'colpali_retrieve: method must be ''exact'' or ''index'', not %',
			pg_catalog.quote_nullable(method)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF method = 'exact' THEN
		-- every page scored by maxsim(); the top k in trec_eval's order
		RETURN QUERY EXECUTE pg_catalog.format($q$
			SELECT qq.%3$I::text, d.pid, d.s, d.rk::integer
			FROM %2$s qq CROSS JOIN LATERAL (
				SELECT x.pid, x.s, pg_catalog.row_number() OVER (ORDER BY x.s DESC, x.pid COLLATE "C" DESC) AS rk
				FROM (SELECT c.%5$I::text AS pid, maxsim(c.%6$I, qq.%4$I) AS s
					  FROM %1$s c WHERE c.%6$I IS NOT NULL) x
				ORDER BY x.s DESC, x.pid COLLATE "C" DESC
				LIMIT $1) d
			WHERE qq.%4$I IS NOT NULL
			ORDER BY 1, 4
			$q$, corpus, queries, query_id_column, query_embedding_column, corpus_id_column, corpus_embedding_column) USING k;
		RETURN;
	END IF;
	-- method 'index': ORDER BY <#> LIMIT k through the corpus's mvivf index
	SELECT EXISTS (
		SELECT FROM pg_catalog.pg_index i
			JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
			JOIN pg_catalog.pg_am am ON am.oid = ic.relam
			JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid
				AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey::int2[])
		WHERE i.indrelid OPERATOR(pg_catalog.=) corpus AND am.amname OPERATOR(pg_catalog.=) 'mvivf'
			AND a.attname OPERATOR(pg_catalog.=) corpus_embedding_column AND i.indisvalid)
		INTO has_index;
	IF NOT has_index THEN
		RAISE EXCEPTION 'colpali_retrieve: % has no valid mvivf index on column %', corpus, corpus_embedding_column
			USING ERRCODE = 'undefined_object',
				  HINT = pg_catalog.format('CREATE INDEX ON %s USING mvivf (%I);', corpus, corpus_embedding_column);
	END IF;
	-- the index, not a sequential scan and a sort; the settings are put back
	-- before returning (an error rolls them back with the transaction)
	old_seqscan := pg_catalog.current_setting('enable_seqscan');
	old_sort := pg_catalog.current_setting('enable_sort');
	PERFORM pg_catalog.set_config('enable_seqscan', 'off', true),
			pg_catalog.set_config('enable_sort', 'off', true);
	RETURN QUERY EXECUTE pg_catalog.format($q$
		SELECT qq.%3$I::text, d.pid, d.s, d.rk::integer
		FROM %2$s qq CROSS JOIN LATERAL (
			SELECT y.pid, y.s, pg_catalog.row_number() OVER (ORDER BY y.s DESC, y.pid COLLATE "C" DESC) AS rk
			FROM (SELECT c.%5$I::text AS pid, maxsim(c.%6$I, qq.%4$I) AS s
				  FROM %1$s c
				  ORDER BY c.%6$I <#> qq.%4$I
				  LIMIT $1) y) d
		WHERE qq.%4$I IS NOT NULL
		ORDER BY 1, 4
		$q$, corpus, queries, query_id_column, query_embedding_column, corpus_id_column, corpus_embedding_column) USING k;
	PERFORM pg_catalog.set_config('enable_seqscan', old_seqscan, true),
			pg_catalog.set_config('enable_sort', old_sort, true);
END
$colpali$;

COMMENT ON FUNCTION colpali_retrieve(regclass, regclass, integer, text, name, name, name, name) IS
'a run: for each query (columns query_id_column, query_embedding_column of table queries), the k best pages (corpus_id_column, corpus_embedding_column of table corpus) with their MaxSim score and rank; method ''exact'' scores every page, ''index'' asks the corpus''s mvivf index (ORDER BY <#> LIMIT k, under the current mvivf settings)';

CREATE FUNCTION colpali_evaluate(corpus regclass, queries regclass, qrels regclass,
	k integer DEFAULT 5, method text DEFAULT 'exact',
	corpus_id_column name DEFAULT 'id', corpus_embedding_column name DEFAULT 'emb',
	query_id_column name DEFAULT 'id', query_embedding_column name DEFAULT 'emb',
	OUT queries_evaluated bigint, OUT ndcg double precision,
	OUT recall double precision, OUT mrr double precision)
RETURNS record
LANGUAGE plpgsql VOLATILE
AS $colpali$
BEGIN
	IF pg_catalog.to_regclass('pg_temp.colpali_evaluate_run') IS NOT NULL THEN
		DROP TABLE pg_temp.colpali_evaluate_run;
	END IF;
	CREATE TEMP TABLE colpali_evaluate_run AS
		SELECT * FROM colpali_retrieve(corpus, queries, k, method, corpus_id_column,
									   corpus_embedding_column, query_id_column, query_embedding_column);
	SELECT * INTO queries_evaluated, ndcg, recall, mrr
	FROM colpali_ir_metrics('pg_temp.colpali_evaluate_run'::regclass, qrels, k);
	DROP TABLE pg_temp.colpali_evaluate_run;
END
$colpali$;

COMMENT ON FUNCTION colpali_evaluate(regclass, regclass, regclass, integer, text, name, name, name, name) IS
'retrieval quality of a corpus of page multivectors for a table of query multivectors and a qrels table (query_id, page_id, relevance): mean nDCG@k, recall@k and MRR@k (trec_eval definitions), by the exact scan or the mvivf index';
