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

-- Documents not refined yet (docs/mvivf.md, "How deep a scan reranks"):
-- their exact score is their centroid interaction plus the gain of their
-- residual codes plus the error of the quantized score, modelled as one
-- normal sum, and the scan refines a quarter of mvivf.refine more at a time
-- while they could beat a row.  On pages of a few topics each, queried with
-- the rows of one page, charging the gain's and the error's tails one after
-- the other made the scan refine every page for some queries (2,064 refined
-- for these six); now about a third of that, with the exact top 10.
SELECT setseed(0.5);
CREATE TABLE mrt AS SELECT t, array_agg((random() - 0.5)::real ORDER BY d) AS c
	FROM generate_series(0, 63) t, generate_series(1, 32) d GROUP BY t;
CREATE TABLE mr (id int PRIMARY KEY, emb multivector);
INSERT INTO mr
SELECT i, l2_normalize(array_agg(v ORDER BY r)::multivector)
FROM (SELECT i, r, array_agg(c[d] + 0.6 * (random()::real - 0.5) ORDER BY d) AS v
	  FROM generate_series(1, 1200) i, generate_series(1, 24) r, generate_series(1, 32) d, mrt
	  WHERE mrt.t = (i * 7 + r % 3 * 13) % 64
	  GROUP BY i, r) x
GROUP BY i;
CREATE INDEX mr_idx ON mr USING mvivf (emb) WITH (lists = 64, bits = 2);
CREATE TABLE mrq AS
SELECT j, l2_normalize(array_agg(v ORDER BY r)::multivector) AS q
FROM (SELECT j, r, array_agg(e + 0.3 * (random()::real - 0.5) ORDER BY d) AS v
	  FROM generate_series(1, 6) j, generate_series(1, 8) r, generate_series(1, 32) d,
		   LATERAL (SELECT ((mr.emb)::real[][])[r * 3][d] AS e FROM mr WHERE mr.id = j * 100) s
	  GROUP BY j, r) x
GROUP BY j;
SET enable_indexscan = off;
CREATE TABLE mrtruth AS
SELECT j, array(SELECT id FROM mr ORDER BY emb <#> q, id LIMIT 10) AS ids FROM mrq;
RESET enable_indexscan;
CREATE FUNCTION mr_depth(q multivector, OUT refined int, OUT reranked int)
LANGUAGE plpgsql AS $$
DECLARE l text; m text[];
BEGIN
	FOR l IN EXECUTE format('EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) '
							'SELECT id FROM mr ORDER BY emb <#> %L LIMIT 10', q) LOOP
		m := regexp_match(l, '^mvivf mr_idx: .* refined=(\d+) .* reranked=(\d+) ');
		IF m IS NOT NULL THEN
			refined := m[1]; reranked := m[2];
		END IF;
	END LOOP;
END $$;
SET enable_seqscan = off;
SET mvivf.refine = 64;
SELECT sum(d.refined) < 900 AS refined_less, bool_and(d.refined < 1200) AS none_refines_all,
	bool_and(array(SELECT id FROM mr ORDER BY emb <#> q LIMIT 10) = t.ids) AS exact_top10
FROM mrq JOIN mrtruth t USING (j), mr_depth(q) d;
RESET mvivf.refine;
RESET enable_seqscan;
DROP TABLE mrt, mr, mrq, mrtruth;
DROP FUNCTION mr_depth(multivector);
