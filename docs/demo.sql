-- colpali demo: store multivectors, rank them by MaxSim with <#>.
\echo '== CREATE EXTENSION colpali'
CREATE EXTENSION colpali;

-- 200 synthetic "pages" of 64 token vectors (D = 128), L2-normalised rows.
-- Each page mixes a few of 20 topics, like ColPali patch embeddings do.
CREATE TABLE pages (id bigint PRIMARY KEY, title text, emb multivector(128));
SELECT setseed(0.42) \g /dev/null
CREATE TEMP TABLE topics AS
	SELECT t, ARRAY(SELECT random() - 0.5 FROM generate_series(1, 128)) AS center
	FROM generate_series(1, 20) t;
INSERT INTO pages
SELECT p, 'page ' || p,
	l2_normalize(ARRAY(
		SELECT ARRAY(SELECT c.center[d] + 1.0 * (random() - 0.5)
					 FROM generate_series(1, 128) d)
		FROM generate_series(1, 64) tok,
			 LATERAL (SELECT center FROM topics
					  WHERE t = 1 + ((p * 7 + (tok % 3) * 5) % 20)) c
	)::multivector)
FROM generate_series(1, 200) p;

\echo '== the table'
SELECT count(*) AS pages, min(num_vectors(emb)) AS tokens_per_page, min(dims(emb)) AS dim,
	   pg_size_pretty(pg_total_relation_size('pages')) AS size
FROM pages;

-- A query of 8 token vectors taken (with noise) from page 42.
CREATE TEMP TABLE q AS
SELECT l2_normalize(ARRAY(
		SELECT ARRAY(SELECT x + 0.05 * (random() - 0.5) FROM unnest(row) x)
		FROM (SELECT (emb::real[])[i:i][1:128] AS row
			  FROM pages, generate_series(1, 8) i WHERE id = 42) r
	)::multivector) AS query;

\echo '== top 5 pages for a query drawn from page 42 (ORDER BY emb <#> query: best first)'
SELECT id, title, round((emb <#> query)::numeric, 4) AS distance,
	   round(maxsim(emb, query)::numeric, 4) AS maxsim
FROM pages, q
ORDER BY emb <#> query
LIMIT 5;

-- The same with the mvivf index: the planner uses it for ORDER BY ... LIMIT.
CREATE INDEX ON pages USING mvivf (emb);
\echo '== with CREATE INDEX ... USING mvivf (emb)'
EXPLAIN (COSTS OFF) SELECT id FROM pages ORDER BY emb <#> (SELECT query FROM q) LIMIT 5;
SELECT id, title, round((emb <#> (SELECT query FROM q))::numeric, 4) AS distance
FROM pages
ORDER BY emb <#> (SELECT query FROM q)
LIMIT 5;
\echo '   (rows come back in exact MaxSim order, but candidates are found approximately: below the'
\echo '    clear winner, near-ties within a few % can be missed.  mvivf.candidates, mvivf.rerank and'
\echo '    mvivf.probes trade latency for recall; keeping and reranking every page is exact:)'
SET mvivf.candidates = 200;
SET mvivf.rerank = 200;
SELECT id, title, round((emb <#> (SELECT query FROM q))::numeric, 4) AS distance
FROM pages
ORDER BY emb <#> (SELECT query FROM q)
LIMIT 5;
RESET mvivf.candidates;
RESET mvivf.rerank;

-- The native encoder with the demo model (test/fixtures/models/demo): a toy
-- ColPali (SigLIP-style vision tower, Gemma-style decoder, 128-d rows, 0.4 M
-- parameters, 56 px input) trained from scratch on synthetic pages by
-- test/fixtures/train_demo.py.  The pages below are its held-out split:
-- company/layout pairs never seen in training.  For real documents, download
-- a checkpoint such as vidore/colpali-v1.3-hf and, as a superuser:
--   ALTER SYSTEM SET colpali.model_path = '/srv/models/colpali-v1.3-hf';
--   SELECT pg_reload_conf();
\echo '== native encoder: the demo model (a toy trained on synthetic pages) encodes 48 held-out pages'
SET colpali.model_path = :'model';
CREATE TABLE corpus (id bigint PRIMARY KEY, title text, image bytea, emb multivector(128));
CREATE TABLE queries (id bigint PRIMARY KEY, text text, emb multivector(128));
CREATE TABLE qrels (query_id bigint, page_id bigint, relevance integer);
INSERT INTO corpus (id, title, image)
SELECT split_part(l, E'\t', 1)::bigint, split_part(l, E'\t', 3),
	   pg_read_binary_file(:'data' || '/' || split_part(l, E'\t', 2))
FROM string_to_table(rtrim(pg_read_file(:'data' || '/corpus.tsv'), E'\n'), E'\n') l;
INSERT INTO queries (id, text)
SELECT split_part(l, E'\t', 1)::bigint, split_part(l, E'\t', 2)
FROM string_to_table(rtrim(pg_read_file(:'data' || '/queries.tsv'), E'\n'), E'\n') l;
INSERT INTO qrels
SELECT split_part(l, E'\t', 1)::bigint, split_part(l, E'\t', 2)::bigint, split_part(l, E'\t', 3)::integer
FROM string_to_table(rtrim(pg_read_file(:'data' || '/qrels.tsv'), E'\n'), E'\n') l;
UPDATE corpus SET emb = colpali_image(image);
UPDATE queries SET emb = colpali_query(text);
CREATE INDEX ON corpus USING mvivf (emb);
SELECT count(*) AS pages, min(num_vectors(emb)) AS rows_per_page, min(dims(emb)) AS dim,
	   (SELECT count(*) FROM queries) AS held_out_queries
FROM corpus;

\echo '== five questions, the top 3 pages of each (through the mvivf index)'
SELECT q.text AS question, r.rank, r.title,
	   round(r.maxsim::numeric, 3) AS maxsim,
	   CASE WHEN r.id = qr.page_id THEN '<- the right page' ELSE '' END AS " "
FROM string_to_table(rtrim(pg_read_file(:'data' || '/demo_questions.tsv'), E'\n'), E'\n') d
	JOIN queries q ON q.id = d::bigint
	JOIN qrels qr ON qr.query_id = q.id
	CROSS JOIN LATERAL (
		SELECT c.id, c.title, -(c.emb <#> q.emb) AS maxsim,
			   row_number() OVER (ORDER BY c.emb <#> q.emb) AS rank
		FROM (SELECT * FROM corpus ORDER BY emb <#> q.emb LIMIT 3) c) r
ORDER BY q.id, r.rank;

\echo '== retrieval quality of the held-out split (96 queries, 48 pages), computed in SQL'
SELECT queries_evaluated AS queries, round(ndcg::numeric, 4) AS "nDCG@5",
	   round(recall::numeric, 4) AS "recall@5", round(mrr::numeric, 4) AS "MRR@5",
	   (SELECT round(recall::numeric, 4) FROM colpali_evaluate('corpus', 'queries', 'qrels', 1)) AS "recall@1"
FROM colpali_evaluate('corpus', 'queries', 'qrels', 5);
