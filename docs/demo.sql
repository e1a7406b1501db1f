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

-- The native encoder.  The demo points colpali.model_path at a TINY model
-- with RANDOM weights (test/fixtures/models/tiny): the embeddings have the
-- right shapes and come from the real ColPali computation, but carry no
-- meaning, so the ranking below is arbitrary.  For real retrieval, download
-- a checkpoint such as vidore/colpali-v1.3-hf and, as a superuser:
--   ALTER SYSTEM SET colpali.model_path = '/srv/models/colpali-v1.3-hf';
--   SELECT pg_reload_conf();
\echo '== native encoder (tiny model with random weights: shapes are real, meaning is not)'
SET colpali.model_path = :'model';
CREATE TABLE docs (name text PRIMARY KEY, img bytea, emb multivector);
INSERT INTO docs (name, img)
SELECT f, pg_read_binary_file(:'data' || '/' || f)
FROM unnest(ARRAY['page_text.png', 'page_table.png', 'page_chart.png', 'photo_baseline.jpg']) f;
UPDATE docs SET emb = colpali_image(img);
SELECT name, length(img) AS bytes, num_vectors(emb) AS rows, dims(emb) AS dim FROM docs ORDER BY name;

\echo '== pages ranked for a query'
SELECT q.text, d.name, round((d.emb <#> q.emb)::numeric, 4) AS distance
FROM (SELECT t AS text, colpali_query(t) AS emb
	  FROM unnest(ARRAY['revenue by region in 2023', 'a table of numbers']) t) q,
	 LATERAL (SELECT name, emb FROM docs ORDER BY emb <#> q.emb LIMIT 2) d
ORDER BY q.text, distance;
