-- mvivf keeps the ORDER BY / LIMIT contract of an index scan:
-- every row comes back in exact <#> order (the float8 the operator returns,
-- NaN last), whatever the filter, LIMIT or settings, and a scan goes on past
-- its first candidates until the query has its rows.
SELECT setseed(0.5);
CREATE TABLE mo (id int PRIMARY KEY, emb multivector);
CREATE FUNCTION mo_rand(nrows int, dim int, topic int) RETURNS multivector
LANGUAGE sql VOLATILE AS $$
	SELECT l2_normalize(array_agg(r ORDER BY i)::multivector)
	FROM (SELECT i, array_agg(CASE WHEN d % 4 = topic THEN 1.0 ELSE 0 END + random()::real * 0.9 ORDER BY d)::real[] AS r
		  FROM generate_series(1, nrows) i, generate_series(0, dim - 1) d GROUP BY i) s
$$;
INSERT INTO mo SELECT i, mo_rand(6, 8, i % 4) FROM generate_series(1, 600) i;
CREATE TABLE moq AS SELECT j, mo_rand(3, 8, j % 4) AS q FROM generate_series(1, 8) j;
CREATE INDEX mo_idx ON mo USING mvivf (emb) WITH (lists = 8);

-- rows of an index scan, in the order returned, with their distances
CREATE FUNCTION mo_scan(q multivector, lim int, modulus int)
RETURNS TABLE (rn bigint, id int, dist float8) LANGUAGE sql VOLATILE AS $$
	SELECT row_number() OVER (), id, dist
	FROM (SELECT id, emb <#> q AS dist FROM mo WHERE id % modulus = 0
		  ORDER BY emb <#> q LIMIT lim) s
$$;
-- true when the distances never decrease
CREATE FUNCTION mo_ordered(q multivector, lim int, modulus int) RETURNS bool
LANGUAGE sql VOLATILE AS $$
	SELECT coalesce(bool_and(ok), true) FROM (
		SELECT dist >= lag(dist) OVER (ORDER BY rn) AS ok FROM mo_scan(q, lim, modulus)) s
	WHERE ok IS NOT NULL
$$;

-- EXPLAIN (COSTS OFF) of q as the same text on PostgreSQL 15 to 18: 17 names
-- an InitPlan's output "(InitPlan N).col1" where 15-16 say "$K" (given by
-- "InitPlan N (returns $K)"), and 18 marks disabled nodes, the index
-- among them when its cost estimate keeps the planner away (mvcost.c)
CREATE FUNCTION mo_plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
	lines text[];
	l text;
	m text[];
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		lines := lines || l;
	END LOOP;
	FOR m IN SELECT regexp_matches(x, 'InitPlan (\d+) \(returns \$(\d+)\)') FROM unnest(lines) x LOOP
		lines := array(SELECT replace(regexp_replace(x, 'InitPlan (\d+) \(returns \$\d+\)', 'InitPlan \1'),
									  '$' || m[2], '(InitPlan ' || m[1] || ').col1') FROM unnest(lines) x);
	END LOOP;
	RETURN QUERY SELECT x FROM unnest(lines) x WHERE x !~ '^\s*Disabled: true$';
END $f$;
SET enable_seqscan = off;
-- with the sort too: PostgreSQL 18 compares disabled plans by their costs,
-- where 15-17 took the index for a filter the planner thinks it serves badly
SET enable_sort = off;
SELECT * FROM mo_plan($$SELECT id FROM mo WHERE id % 7 = 0 ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 20$$);

-- scans are counted in the statistics views
SELECT pg_stat_force_next_flush();
SELECT idx_scan AS scans_before FROM pg_stat_user_indexes WHERE indexrelname = 'mo_idx' \gset
SELECT count(*) FROM (SELECT id FROM mo ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 3) x;
SELECT pg_stat_force_next_flush();
SELECT idx_scan - :scans_before AS new_scans FROM pg_stat_user_indexes WHERE indexrelname = 'mo_idx';

-- 1. a WHERE filter consumes far more than mvivf.rerank candidates: the rows
-- still come in exact order, and all LIMIT rows come
SELECT j, mo_ordered(q, 20, 7) AS ordered,
	(SELECT count(*) FROM mo_scan(q, 20, 7)) AS n
FROM moq ORDER BY j;
SELECT j, mo_ordered(q, 40, 13) AS ordered,
	(SELECT count(*) FROM mo_scan(q, 40, 13)) AS n
FROM moq ORDER BY j;
-- small batches: many of them, still in order
SET mvivf.rerank = 3;
SELECT bool_and(mo_ordered(q, 30, 5)) AS ordered,
	bool_and((SELECT count(*) FROM mo_scan(q, 30, 5)) = 30) AS full FROM moq;
RESET mvivf.rerank;

-- 2. no filter, LIMIT far beyond the first batch: every LIMIT row, in order
SELECT count(*) FROM (SELECT id FROM mo ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 500) x;
SELECT bool_and(mo_ordered(q, 500, 1)) AS ordered FROM moq;
-- without a LIMIT: in order; a later batch may hold a few rows closer than
-- rows already returned, which are skipped (docs/mvivf.md, "The contract"),
-- unless every document is reranked before the first row
SELECT bool_and(mo_ordered(q, NULL, 1)) AS ordered FROM moq;
SET mvivf.rerank = 100000;
SELECT count(*) FROM (SELECT id FROM mo ORDER BY emb <#> '[[0,1,0,0,0,0,0,0]]') x;
RESET mvivf.rerank;
-- mvivf.max_scan_docs bounds the scan, documented; iterative_scan = off
-- stops after mvivf.candidates; both still return rows in order
SET mvivf.max_scan_docs = 150;
SELECT count(*) <= 150 AS bounded FROM (SELECT id FROM mo ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 500) x;
RESET mvivf.max_scan_docs;
SET mvivf.iterative_scan = off;
SELECT count(*) BETWEEN 1 AND current_setting('mvivf.candidates')::int AS bounded_by_candidates
FROM (SELECT id FROM mo ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 500) x;
SELECT bool_and(mo_ordered(q, 20, 7)) AS ordered FROM moq;
RESET mvivf.iterative_scan;
-- relaxed_order (0.1.0) is a synonym of strict_order now
SET mvivf.iterative_scan = relaxed_order;
SELECT bool_and(mo_ordered(q, 20, 7)) AS ordered FROM moq;
RESET mvivf.iterative_scan;

-- the planner: the index for a small LIMIT, not for a LIMIT beyond what one
-- scan may rerank, nor without a LIMIT on a table larger than that
RESET enable_seqscan;
RESET enable_sort;
SET mvivf.max_scan_docs = 100;
SET mvivf.rerank = 20;
SET random_page_cost = 0.1;
EXPLAIN (COSTS OFF) SELECT id FROM mo ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM mo ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 300;
EXPLAIN (COSTS OFF) SELECT id FROM mo ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]';
-- a filter passing about a tenth of the rows: 20 rows need about 200 documents
EXPLAIN (COSTS OFF) SELECT id FROM mo WHERE id % 10 = 0 ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 20;
RESET mvivf.max_scan_docs;
-- nor when the query needs more than half of the table (a sort is exact)
EXPLAIN (COSTS OFF) SELECT id FROM mo ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 400;
RESET mvivf.rerank;
RESET random_page_cost;

-- 3. exact float8 distances: near-ties that float32 cannot tell apart,
-- distances beyond the float32 range, and NaN (last, as float8 sorts it)
CREATE TABLE mt (id int, emb multivector);
INSERT INTO mt SELECT i, mo_rand(2, 2, i % 2) FROM generate_series(1, 40) i;
INSERT INTO mt VALUES
	(101, '[[1, 0], [0, 0]]'),          -- maxsim 1
	(102, '[[1, 0], [0, 1e-8]]'),       -- maxsim 1 + 1e-8: better, inserted later
	(103, '[[1.7e19, 0], [0, 1.7e19]]'),  -- 5.78e38: beyond float32
	(104, '[[1.8e19, 0], [0, 1.8e19]]'),  -- 6.48e38: better, inserted later
	(105, '[[1e20, 1e20]]');            -- +inf - inf = NaN for query 3 below
CREATE INDEX mt_idx ON mt USING mvivf (emb) WITH (lists = 2);
CREATE TABLE mtq (j int, q multivector);
INSERT INTO mtq VALUES (1, '[[1, 0], [0, 1]]'), (2, '[[1, 0], [0, 1], [1, 1]]'),
	(3, '[[1e20, 0], [-1e20, 0]]'), (4, '[[1.8e19, 0], [0, 1.8e19]]');
-- distances in the order of an index scan (every document reranked) or of
-- a sort (ties may come in any order, so distances are compared, not ids)
CREATE FUNCTION mt_order(q multivector, use_index bool) RETURNS float8[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	r float8[];
BEGIN
	PERFORM set_config('enable_seqscan', CASE WHEN use_index THEN 'off' ELSE 'on' END, true);
	PERFORM set_config('enable_indexscan', CASE WHEN use_index THEN 'on' ELSE 'off' END, true);
	PERFORM set_config('mvivf.rerank', '100000', true);
	EXECUTE 'SELECT array_agg(d) FROM (SELECT emb <#> $1 AS d FROM mt ORDER BY emb <#> $1) s' INTO r USING q;
	RETURN r;
END
$$;
SELECT j, mt_order(q, true) = mt_order(q, false) AS same_as_sort,
	(mt_order(q, true))[1:3] AS first_three,
	(SELECT count(*) FROM unnest(mt_order(q, true)) d WHERE d = 'NaN') AS nans
FROM mtq ORDER BY j;
-- the index is used there
SET enable_seqscan = off;
SET enable_sort = off;
SELECT * FROM mo_plan($$SELECT id FROM mt ORDER BY emb <#> '[[1, 0], [0, 1]]'$$);
RESET enable_seqscan;
RESET enable_sort;
SELECT emb <#> '[[1e20, 0], [-1e20, 0]]' AS nan_distance FROM mt WHERE id = 105;

-- the per-row tables of the approximate stage stay within work_mem x
-- hash_mem_multiplier: a 300-row query takes several passes under a small
-- work_mem, and finds the same rows in the same order
CREATE TABLE mbig AS SELECT mo_rand(300, 8, 1) AS q;
SET enable_seqscan = off;
SET jit = off;
SET work_mem = '64MB';
SET client_min_messages = debug1;
SELECT array_agg(id) AS big_wm FROM (SELECT id FROM mo ORDER BY emb <#> (SELECT q FROM mbig) LIMIT 10) x \gset
SET work_mem = '64kB';
SELECT array_agg(id) AS small_wm FROM (SELECT id FROM mo ORDER BY emb <#> (SELECT q FROM mbig) LIMIT 10) x \gset
RESET client_min_messages;
RESET work_mem;
RESET jit;
SELECT :'big_wm' = :'small_wm' AS same_rows;

-- a table with several mvivf indexes: inserts maintain each, scans use each
CREATE INDEX mo_idx2 ON mo USING mvivf (emb) WITH (lists = 4, bits = 4);
INSERT INTO mo SELECT i, mo_rand(6, 8, i % 4) FROM generate_series(601, 700) i;
SET mvivf.probes = 8;
SET mvivf.rerank = 100000;
SELECT bool_and(mo_ordered(q, 700, 1)) AS ordered,
	bool_and((SELECT count(*) FROM mo_scan(q, 700, 1)) = 700) AS all_rows FROM moq;
DROP INDEX mo_idx;
SELECT bool_and(mo_ordered(q, 700, 1)) AS ordered,
	bool_and((SELECT count(*) FROM mo_scan(q, 700, 1)) = 700) AS all_rows FROM moq;
RESET mvivf.probes;
RESET mvivf.rerank;
RESET enable_seqscan;

-- dimensions: an index is accepted only for what it can be rebuilt with
-- (a centroid must fit on an 8 kB page), checked before any training
CREATE TABLE mwide (id int, emb multivector(4000));
CREATE INDEX ON mwide USING mvivf (emb);
CREATE TABLE mwide2 (id int, emb multivector);
CREATE INDEX mwide2_idx ON mwide2 USING mvivf (emb);
INSERT INTO mwide2 SELECT 1, array_fill(0.01::real, ARRAY[2, 2100])::multivector;
INSERT INTO mwide2 SELECT 1, array_fill(0.02::real, ARRAY[2, 2038])::multivector;
DROP INDEX mwide2_idx;
INSERT INTO mwide2 SELECT 2, array_fill(0.01::real, ARRAY[2, 2100])::multivector;
TRUNCATE mwide2;
INSERT INTO mwide2 SELECT 2, array_fill(0.01::real, ARRAY[2, 2100])::multivector;
CREATE INDEX ON mwide2 USING mvivf (emb);

-- rows that are not L2-normalised: a warning at build time
CREATE TABLE mraw (id int, emb multivector);
INSERT INTO mraw SELECT i, '[[3, 4], [1, 0]]' FROM generate_series(1, 20) i;
CREATE INDEX ON mraw USING mvivf (emb) WITH (lists = 2);

DROP TABLE mo, moq, mt, mtq, mbig, mwide, mwide2, mraw;
DROP FUNCTION mo_rand, mo_scan, mo_ordered, mt_order, mo_plan;
