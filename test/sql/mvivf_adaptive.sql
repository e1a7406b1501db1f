-- The adaptive rerank (docs/mvivf.md, "How deep a scan reranks"): a scan
-- reranks as deep as its own approximation errors require.  On random data
-- the approximate scores are poor and the best documents are near ties: at
-- the default settings the index still returns the exact top 10, computed
-- here by the sequential scan, where a fixed depth (mvivf.max_rerank) misses
-- most of it; on a query with one clear best document it stops early.
SELECT setseed(0.25);
CREATE TABLE ma (id int PRIMARY KEY, emb multivector);
INSERT INTO ma
SELECT i, l2_normalize(array_agg(r ORDER BY k)::multivector)
FROM (SELECT i, k, array_agg(random()::real - 0.5 ORDER BY d)::real[] AS r
	  FROM generate_series(1, 1500) i, generate_series(1, 12) k, generate_series(1, 16) d
	  GROUP BY i, k) s
GROUP BY i;
CREATE TABLE maq AS
SELECT j, l2_normalize(array_agg(r ORDER BY k)::multivector) AS q
FROM (SELECT j, k, array_agg(random()::real - 0.5 ORDER BY d)::real[] AS r
	  FROM generate_series(1, 8) j, generate_series(1, 6) k, generate_series(1, 16) d
	  GROUP BY j, k) s
GROUP BY j;
-- queries 9 and 10: the rows of one document, whose best match it is by far
INSERT INTO maq SELECT 8 + n, emb FROM (VALUES (1, 17), (2, 1234)) t(n, doc), ma WHERE ma.id = t.doc;
CREATE INDEX ma_idx ON ma USING mvivf (emb) WITH (lists = 16, bits = 1);

-- the exact top 10 of every query, by the sequential scan
SET enable_indexscan = off;
CREATE TABLE matruth AS
SELECT j, array(SELECT id FROM ma ORDER BY emb <#> q, id LIMIT 10) AS ids FROM maq;
RESET enable_indexscan;
SET enable_seqscan = off;

-- how many of the exact top 10 an index scan returns
CREATE FUNCTION ma_found(q multivector, ids int[]) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(*) FROM unnest(array(SELECT id FROM ma ORDER BY emb <#> q LIMIT 10)) i
	WHERE i = ANY (ids)
$$;
-- the reranked count and stop reason of the mvivf line of EXPLAIN (ANALYZE)
CREATE FUNCTION ma_depth(q multivector, lim int, OUT reranked int, OUT stop text)
LANGUAGE plpgsql AS $$
DECLARE l text; m text[];
BEGIN
	FOR l IN EXECUTE format('EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) '
							'SELECT id FROM ma ORDER BY emb <#> %L LIMIT %s', q, lim) LOOP
		m := regexp_match(l, '^mvivf ma_idx: .* reranked=(\d+) .* margin=\S+ stop=(\S+)$');
		IF m IS NOT NULL THEN
			reranked := m[1]; stop := m[2];
		END IF;
	END LOOP;
END $$;
SELECT 1;	-- the library is loaded: EXPLAIN shows the mvivf line from now on

-- defaults: every query gets its exact top 10
SELECT j, ma_found(q, ids) AS found FROM maq JOIN matruth USING (j) ORDER BY j;
-- the random queries reranked far deeper than mvivf.rerank, and stopped on
-- the bound, not because every document was reranked
SELECT j, d.reranked > 2 * current_setting('mvivf.rerank')::int AS deep,
	d.reranked < (SELECT count(*) FROM ma) AS partial, d.stop
FROM maq, ma_depth(q, 10) d WHERE j <= 8 ORDER BY j;
-- a query with one clear best document stops early for LIMIT 1
SELECT j, d.reranked < (SELECT count(*) FROM ma) / 4 AS shallow, d.stop,
	(SELECT id FROM ma ORDER BY emb <#> q LIMIT 1) = ids[1] AS exact_first
FROM maq JOIN matruth USING (j), ma_depth(q, 1) d WHERE j > 8 ORDER BY j;

-- a fixed depth (the cap mvivf.max_rerank) misses most of the top 10
SET mvivf.max_rerank = 80;
SELECT sum(ma_found(q, ids)) < 40 AS fixed_depth_misses FROM maq JOIN matruth USING (j) WHERE j <= 8;
SELECT DISTINCT d.stop FROM maq, ma_depth(q, 10) d WHERE j <= 8;
RESET mvivf.max_rerank;

-- mvivf.miss_tolerance = 0: every document refined and reranked, exact
SET mvivf.miss_tolerance = 0;
SELECT j, ma_found(q, ids) AS found, d.reranked = (SELECT count(*) FROM ma) AS all_reranked, d.stop
FROM maq JOIN matruth USING (j), ma_depth(q, 10) d WHERE j IN (1, 9) ORDER BY j;
RESET mvivf.miss_tolerance;

RESET enable_seqscan;
DROP TABLE ma, maq, matruth;
DROP FUNCTION ma_found(multivector, int[]), ma_depth(multivector, int);
