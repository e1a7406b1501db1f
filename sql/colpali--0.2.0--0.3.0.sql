/* colpali 0.2.0 -> 0.3.0 upgrade script */
\echo Use "ALTER EXTENSION colpali UPDATE TO '0.3.0'" to load this file. \quit

-- Every object added or changed in sql/sections/ since 0.2.0 is created or
-- altered here too, in one commented block per change; TAP test
-- test/t/040_upgrade.pl checks that an updated installation has exactly the
-- objects of a fresh one.

-- ---------------------------------------------------------------------------
-- Token pooling (sql/sections/70_pool.sql, repeated here verbatim).
-- ---------------------------------------------------------------------------
CREATE FUNCTION colpali_pool(multivector, factor integer) RETURNS multivector
	AS 'MODULE_PATHNAME', 'colpali_pool'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100000;

COMMENT ON FUNCTION colpali_pool(multivector, integer) IS
'hierarchical token pooling (colpali-engine''s HierarchicalTokenPooler): at most max(N / factor, 1) rows, each the L2-normalised mean of a Ward cluster of rows; factor 1 returns the input; at most 2048 rows';

CREATE FUNCTION colpali_image(bytea, pool_factor integer) RETURNS multivector
	AS 'MODULE_PATHNAME', 'colpali_image_pooled'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 1000000;

COMMENT ON FUNCTION colpali_image(bytea, integer) IS
'embeds a page image like colpali_image(bytea) and pools its rows with colpali_pool(..., pool_factor); colpali.pool_factor is ignored';

CREATE FUNCTION colpali_images(bytea[], pool_factor integer) RETURNS multivector[]
	AS 'MODULE_PATHNAME', 'colpali_images_pooled'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 1000000;

COMMENT ON FUNCTION colpali_images(bytea[], integer) IS
'embeds many page images like colpali_images(bytea[]) and pools each with colpali_pool(..., pool_factor); colpali.pool_factor is ignored';

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

-- ---------------------------------------------------------------------------
-- colpali_model_info (new in 0.2.0; same text as sql/sections/57_model_info.sql)
CREATE FUNCTION colpali_model_info(
	OUT architecture text,
	OUT embedding_dim integer,
	OUT page_rows integer,
	OUT visual_tokens integer,
	OUT query_format text,
	OUT page_format text,
	OUT compute_precision text,
	OUT device text,
	OUT kernels text,
	OUT mode text)
	RETURNS record
	AS 'MODULE_PATHNAME', 'colpali_model_info'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION colpali_model_info() IS
'the configured model as the encoder sees it (loading it if needed): architecture from config.json (ColPali, ColQwen2, ColQwen2.5), output width, rows of a page embedding (every page for ColPali, at most at colpali.max_visual_tokens for ColQwen2) and its image rows, the query and page prompt formats (colpali.query_format, colpali.page_format), compute precision (fp32 or bf16), device and CPU kernels, and whether the worker or this backend answered';
