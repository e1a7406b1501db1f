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
		SELECT ARRAY(SELECT c.center[d] + 0.3 * (random() - 0.5)
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
