-- mvivf index access method
SELECT setseed(0.25);
CREATE TABLE mv (id int PRIMARY KEY, emb multivector);
-- 300 documents of 12 rows x 8 dims with 4 topics; 10 queries of 3 rows
CREATE FUNCTION mv_rand(nrows int, dim int, topic int) RETURNS multivector
LANGUAGE sql VOLATILE AS $$
	SELECT l2_normalize(array_agg(r ORDER BY i)::multivector)
	FROM (SELECT i, array_agg(CASE WHEN d % 4 = topic THEN 1.0 ELSE 0 END + random()::real * 0.8 ORDER BY d)::real[] AS r
		  FROM generate_series(1, nrows) i, generate_series(0, dim - 1) d GROUP BY i) s
$$;
INSERT INTO mv SELECT i, mv_rand(12, 8, i % 4) FROM generate_series(1, 300) i;
CREATE TABLE mvq AS SELECT j, mv_rand(3, 8, j % 4) AS q FROM generate_series(1, 10) j;

-- exact top-10 ids per query, by the maxsim function (which no index serves)
CREATE FUNCTION mv_exact(q multivector, k int) RETURNS int[] LANGUAGE sql STABLE AS $$
	SELECT array_agg(id ORDER BY s DESC, id) FROM (SELECT id, maxsim(emb, q) AS s FROM mv WHERE emb IS NOT NULL ORDER BY 2 DESC, 1 LIMIT k) x
$$;
CREATE FUNCTION mv_index(q multivector, k int) RETURNS int[] LANGUAGE sql STABLE AS $$
	SELECT array_agg(id) FROM (SELECT id FROM mv ORDER BY emb <#> q LIMIT k) x
$$;

-- build, options
CREATE INDEX mv_idx ON mv USING mvivf (emb) WITH (lists = 8);
SELECT amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.relname = 'mv_idx';
SELECT opcname, amvalidate(oid) FROM pg_opclass WHERE opcname = 'multivector_maxsim_ops';

SET enable_seqscan = off;
-- with the sort too: PostgreSQL 18 compares disabled plans by their costs,
-- where 15-17 took the index for a filter the planner thinks it serves badly
SET enable_sort = off;
EXPLAIN (COSTS OFF) SELECT id FROM mv ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 5;
-- never without ORDER BY <#>
RESET enable_seqscan;
RESET enable_sort;
EXPLAIN (COSTS OFF) SELECT count(*) FROM mv;
EXPLAIN (COSTS OFF) SELECT id FROM mv ORDER BY maxsim(emb, '[[1,0,0,0,0,0,0,0]]') DESC LIMIT 5;
SET enable_seqscan = off;
SET enable_sort = off;

-- probing every list with every document a candidate, the index is exact
SET mvivf.probes = 8;
SET mvivf.candidates = 1000;
SET mvivf.rerank = 1000;
SELECT count(*) FILTER (WHERE mv_index(q, 10) = mv_exact(q, 10)) AS exact_queries FROM mvq;
-- the full order too, scores included
SELECT bool_and(ok) FROM (
	SELECT (SELECT array_agg(s ORDER BY rn) FROM (SELECT emb <#> q AS s, row_number() OVER () AS rn FROM (SELECT emb FROM mv ORDER BY emb <#> q) a) b)
		= (SELECT array_agg(-maxsim(emb, q) ORDER BY maxsim(emb, q) DESC) FROM mv) AS ok
	FROM mvq) x;
-- defaults: approximate candidates, but rows still come in exact order
RESET mvivf.probes;
RESET mvivf.candidates;
RESET mvivf.rerank;
SELECT bool_and(ok) FROM (
	SELECT (SELECT array_agg(s ORDER BY rn) FROM (SELECT emb <#> q AS s, row_number() OVER () AS rn FROM (SELECT emb FROM mv ORDER BY emb <#> q LIMIT 10) a) b)
		= (SELECT array_agg(s ORDER BY s) FROM (SELECT emb <#> q AS s FROM mv ORDER BY emb <#> q LIMIT 10) c) AS ok
	FROM mvq) x;

-- inserts go to the pending area and are found at once
SET mvivf.probes = 8;
SET mvivf.candidates = 1000;
SET mvivf.rerank = 1000;
INSERT INTO mv SELECT i, mv_rand(12, 8, i % 4) FROM generate_series(301, 400) i;
SELECT count(*) FILTER (WHERE mv_index(q, 10) = mv_exact(q, 10)) AS exact_queries FROM mvq;
SELECT count(*) FROM (SELECT id FROM mv ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]') x;
-- deleted rows are never returned; VACUUM merges the pending area and compacts
DELETE FROM mv WHERE id % 3 = 0;
SELECT count(*) FROM (SELECT id FROM mv ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]') x;
VACUUM mv;
SELECT count(*) FROM (SELECT id FROM mv ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]') x;
SELECT count(*) FILTER (WHERE mv_index(q, 10) = mv_exact(q, 10)) AS exact_queries FROM mvq;
INSERT INTO mv SELECT i, mv_rand(12, 8, i % 4) FROM generate_series(401, 450) i;
SELECT count(*) FILTER (WHERE mv_index(q, 10) = mv_exact(q, 10)) AS exact_queries FROM mvq;

-- rows whose value is NULL come after all the others, as a sort puts them
-- (ORDER BY ... ASC is NULLS LAST), once every other row is out
CREATE FUNCTION mv_tail(lim int) RETURNS TABLE (all_rows bool, non_null_first bool, last_ids int[])
LANGUAGE sql VOLATILE AS $$
	SELECT count(*) = least(lim, (SELECT count(*) FROM mv)),
		   coalesce(bool_and(emb IS NOT NULL) FILTER (WHERE rn <= (SELECT count(emb) FROM mv)), true),
		   array_agg(id ORDER BY id) FILTER (WHERE rn > (SELECT count(emb) FROM mv))
	FROM (SELECT row_number() OVER () AS rn, id, emb
		  FROM (SELECT id, emb FROM mv ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT lim) x) y
$$;
INSERT INTO mv VALUES (1000, NULL);
SELECT * FROM mv_tail(10000);
SELECT * FROM mv_tail(10);
-- a NULL query returns every row (all distances NULL) in no particular order
SELECT count(*) = (SELECT count(*) FROM mv) AS every_row FROM (SELECT id FROM mv ORDER BY emb <#> NULL) x;

-- dimension mismatch
INSERT INTO mv VALUES (1001, '[[1,2,3]]');
SELECT id FROM mv ORDER BY emb <#> '[[1,2,3]]' LIMIT 1;

-- REINDEX
REINDEX INDEX mv_idx;
SELECT count(*) FILTER (WHERE mv_index(q, 10) = mv_exact(q, 10)) AS exact_queries FROM mvq;
-- the NULL rows were indexed by the build, another by an insert; a deleted
-- one is gone after VACUUM
INSERT INTO mv VALUES (1002, NULL), (1003, NULL);
DELETE FROM mv WHERE id = 1003;
VACUUM mv;
SELECT * FROM mv_tail(10000);
-- an index built on NULL rows only: untrained, it returns them too
CREATE TABLE mvn (id int, emb multivector);
INSERT INTO mvn VALUES (1, NULL), (2, NULL);
CREATE INDEX ON mvn USING mvivf (emb);
INSERT INTO mvn VALUES (3, '[[1,0]]'), (4, NULL), (5, '[[0,1]]');
SELECT array_agg(id) AS ids FROM (SELECT id FROM mvn ORDER BY emb <#> '[[1,0.5]]' LIMIT 10) x;
SELECT array_agg(id) AS ids FROM (SELECT id FROM mvn ORDER BY emb <#> '[[1,0.5]]' LIMIT 2) x;
DROP TABLE mvn;

-- a WHERE filter: with iterative scans off a query may return fewer rows
RESET mvivf.probes;
SET mvivf.candidates = 5;
SET mvivf.rerank = 5;
SET mvivf.iterative_scan = off;
SELECT count(*) < 10 AS fewer_rows FROM (SELECT id FROM mv WHERE id % 10 = 1 ORDER BY emb <#> '[[0,1,0,0,0,0,0,0]]' LIMIT 10) x;
SET mvivf.iterative_scan = strict_order;
SELECT count(*) FROM (SELECT id FROM mv WHERE id % 10 = 1 ORDER BY emb <#> '[[0,1,0,0,0,0,0,0]]' LIMIT 10) x;
RESET mvivf.iterative_scan;
RESET mvivf.candidates;
RESET mvivf.rerank;

-- option errors
CREATE INDEX ON mv USING mvivf (emb) WITH (bits = 3);
CREATE INDEX ON mv USING mvivf (emb) WITH (bits = 8);
CREATE INDEX ON mv USING mvivf (emb) WITH (lists = -1);
CREATE INDEX ON mv USING mvivf (emb) WITH (lists = 70000);
CREATE INDEX ON mv USING mvivf (emb) WITH (kmeans_iterations = 0);
CREATE INDEX ON mv USING mvivf (emb) WITH (nosuch = 1);
SET mvivf.probes = -1;
SET mvivf.iterative_scan = strict;
SET mvivf.nosuch = 1;
-- bits 1 and 4, automatic lists
CREATE INDEX mv_idx1 ON mv USING mvivf (emb) WITH (bits = 1);
CREATE INDEX mv_idx4 ON mv USING mvivf (emb) WITH (bits = 4, kmeans_iterations = 2, samples_per_list = 16);
-- inserts maintain three mvivf indexes of one table
INSERT INTO mv SELECT i, mv_rand(12, 8, i % 4) FROM generate_series(481, 490) i;
DROP INDEX mv_idx1, mv_idx4;
-- 1024 lists or more: tokens are assigned through a two-level quantizer;
-- probing every list the index is still exact, inserts included
CREATE INDEX mv_idx2 ON mv USING mvivf (emb) WITH (lists = 1500, samples_per_list = 4);
SET mvivf.probes = 1500;
SET mvivf.candidates = 1000;
SET mvivf.rerank = 1000;
INSERT INTO mv SELECT i, mv_rand(12, 8, i % 4) FROM generate_series(451, 470) i;
SELECT count(*) FILTER (WHERE mv_index(q, 10) = mv_exact(q, 10)) AS exact_queries FROM mvq;
RESET mvivf.probes;
RESET mvivf.candidates;
RESET mvivf.rerank;
DROP INDEX mv_idx2;
-- not a multicolumn index, and only the multivector type
CREATE INDEX ON mv USING mvivf (emb, emb);
CREATE INDEX ON mv USING mvivf (id);

-- an expression index
CREATE TABLE mvx (id int, emb multivector);
INSERT INTO mvx SELECT id, emb FROM mv WHERE emb IS NOT NULL AND id <= 100;
CREATE INDEX ON mvx USING mvivf (l2_normalize(emb)) WITH (lists = 4);
SET mvivf.probes = 4;
SET mvivf.candidates = 1000;
SET mvivf.rerank = 1000;
EXPLAIN (COSTS OFF) SELECT id FROM mvx ORDER BY l2_normalize(emb) <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 3;
SELECT array_agg(id) = (SELECT array_agg(id ORDER BY maxsim(l2_normalize(emb), '[[1,0,0,0,0,0,0,0]]') DESC) FROM mvx)
FROM (SELECT id FROM mvx ORDER BY l2_normalize(emb) <#> '[[1,0,0,0,0,0,0,0]]') x;

-- empty table: an untrained index, searched exhaustively, then filled
CREATE TABLE mve (id int, emb multivector);
CREATE INDEX mve_idx ON mve USING mvivf (emb);
SELECT count(*) FROM (SELECT id FROM mve ORDER BY emb <#> '[[1,0]]' LIMIT 3) x;
INSERT INTO mve VALUES (1, '[[1,0]]'), (2, '[[0,1]]'), (3, '[[0.6,0.8]]'), (4, NULL);
SELECT id FROM mve ORDER BY emb <#> '[[1,0]]' LIMIT 3;
INSERT INTO mve VALUES (5, '[[1,0,0]]');
DELETE FROM mve WHERE id = 1;
VACUUM mve;
SELECT id FROM mve ORDER BY emb <#> '[[1,0]]';

-- unlogged table
CREATE UNLOGGED TABLE mvu (id int, emb multivector);
INSERT INTO mvu SELECT id, emb FROM mv WHERE id <= 50 AND emb IS NOT NULL;
CREATE INDEX ON mvu USING mvivf (emb) WITH (lists = 4);
SELECT array_agg(id) = (SELECT array_agg(id ORDER BY maxsim(emb, '[[0,0,1,0,0,0,0,0]]') DESC) FROM mvu)
FROM (SELECT id FROM mvu ORDER BY emb <#> '[[0,0,1,0,0,0,0,0]]') x;
SELECT relpersistence FROM pg_class WHERE relname = 'mvu_emb_idx';

-- a scan runs its products in the backend's own thread: loading OpenBLAS
-- starts no worker threads (it would start one per core, which spin)
\c
SET enable_seqscan = off;
SELECT count(*) FROM (SELECT id FROM mv ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 5) x;
SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'), 'Threads:\s+(\d+)'))[1] AS backend_threads;

DROP TABLE mv, mvq, mvx, mve, mvu;
DROP FUNCTION mv_rand, mv_exact, mv_index, mv_tail;
