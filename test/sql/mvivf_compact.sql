-- mvivf over halfmultivector and bitmultivector columns, over pooled data,
-- and the two ways to get a binary first pass with a full-precision rerank.
-- Every index answer is compared with the sequential scan's, computed here.
SELECT setseed(0.125);
-- 9 rows x 32 dims, unit rows, signs mixed (so that the bits differ), 4 topics
CREATE FUNCTION mc_rand(nrows int, dim int, topic int) RETURNS multivector
LANGUAGE sql VOLATILE AS $$
	SELECT l2_normalize(array_agg(r ORDER BY i)::multivector)
	FROM (SELECT i, array_agg(CASE WHEN d % 4 = topic THEN 0.7 ELSE 0 END + random()::real - 0.5 ORDER BY d)::real[] AS r
		  FROM generate_series(1, nrows) i, generate_series(0, dim - 1) d GROUP BY i) s
$$;
CREATE TABLE mc (id int PRIMARY KEY, f multivector(32), h halfmultivector(32),
	b bitmultivector(32), p multivector(32), pb bitmultivector(32));
INSERT INTO mc SELECT i, e, e, e, colpali_pool(e, 3), colpali_pool(e, 3)
FROM (SELECT i, mc_rand(9, 32, i % 4) AS e FROM generate_series(1, 300) i) s;
CREATE TABLE mcq AS SELECT j, mc_rand(4, 32, j % 4) AS q FROM generate_series(1, 6) j;

-- ORDER BY <col> <#> <qexpr> LIMIT k on table tbl, by index scan or by
-- sequential scan:
-- the distances in the order returned, and the ids of the rows strictly
-- closer than the last one (rows tied at the cut may differ), by distance
CREATE FUNCTION mc_top(tbl text, col text, qexpr text, q multivector, k int, use_index bool,
	OUT dists float8[], OUT ids int[])
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM set_config('enable_seqscan', (NOT use_index)::text, true);
	PERFORM set_config('enable_indexscan', use_index::text, true);
	PERFORM set_config('enable_bitmapscan', 'off', true);
	EXECUTE format('SELECT array_agg(d ORDER BY rn), array_agg(id ORDER BY d, id) FILTER (WHERE d < last)
		FROM (SELECT rn, id, d, last_value(d) OVER (ORDER BY rn ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS last
			  FROM (SELECT row_number() OVER () AS rn, id, d
					FROM (SELECT id, %1$s <#> %2$s AS d FROM %4$s ORDER BY %1$s <#> %2$s LIMIT %3$s) s) t) u',
		col, qexpr, k, tbl) INTO dists, ids USING q;
END $$;
-- per query: does the index give the sequential scan's answer, and are its
-- distances in non-decreasing order?
CREATE FUNCTION mc_check(col text, qexpr text, k int, tbl text DEFAULT 'mc')
RETURNS TABLE (same_as_seqscan int, ordered int) LANGUAGE sql VOLATILE AS $$
	SELECT count(*) FILTER (WHERE i = s)::int,
		count(*) FILTER (WHERE (SELECT bool_and(coalesce(x >= lx, true)) FROM (SELECT x, lag(x) OVER (ORDER BY o) AS lx FROM unnest(i.dists) WITH ORDINALITY AS u(x, o)) v))::int
	FROM mcq, LATERAL mc_top(tbl, col, qexpr, q, k, true) i, LATERAL mc_top(tbl, col, qexpr, q, k, false) s
$$;

CREATE INDEX mc_h ON mc USING mvivf (h) WITH (lists = 16);
CREATE INDEX mc_b ON mc USING mvivf (b) WITH (lists = 16);
CREATE INDEX mc_p ON mc USING mvivf (p) WITH (lists = 16);
CREATE INDEX mc_pb ON mc USING mvivf (pb) WITH (lists = 16);
SELECT opcname, amvalidate(oid) FROM pg_opclass
WHERE opcname IN ('halfmultivector_maxsim_ops', 'bitmultivector_maxsim_ops') ORDER BY 1;
SELECT c.relname, o.opcname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	JOIN pg_opclass o ON o.oid = i.indclass[0] WHERE i.indrelid = 'mc'::regclass AND c.relname <> 'mc_pkey' ORDER BY 1;

-- every (column, query) pair the operator families have is served
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM mc ORDER BY h <#> '[[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]'::multivector LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM mc ORDER BY h <#> '[[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]'::halfmultivector LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM mc ORDER BY b <#> '[[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]]'::multivector LIMIT 5;
EXPLAIN (COSTS OFF) SELECT id FROM mc ORDER BY b <#> '[10110011101100111011001110110011]'::bitmultivector LIMIT 5;
RESET enable_seqscan;

-- exhaustive settings: every pair gives the sequential scan's answer
SET mvivf.rerank = 100000;
SELECT 'half, float query' AS pair, * FROM mc_check('h', '$1', 10)
UNION ALL SELECT 'half, half query', * FROM mc_check('h', '$1::halfmultivector', 10)
UNION ALL SELECT 'binary, float query', * FROM mc_check('b', '$1', 10)
UNION ALL SELECT 'binary, binary query', * FROM mc_check('b', '$1::bitmultivector', 10)
UNION ALL SELECT 'pooled float', * FROM mc_check('p', '$1', 10)
UNION ALL SELECT 'pooled binary, float query', * FROM mc_check('pb', '$1', 10)
UNION ALL SELECT 'binary, all rows', * FROM mc_check('b', '$1', 300);
-- defaults: candidates are approximate, the order stays exact
RESET mvivf.rerank;
SET mvivf.refine = 8;
SET mvivf.rerank = 5;
SELECT 'half, float query' AS pair, ordered FROM mc_check('h', '$1', 20)
UNION ALL SELECT 'binary, float query', ordered FROM mc_check('b', '$1', 20)
UNION ALL SELECT 'binary, binary query', ordered FROM mc_check('b', '$1::bitmultivector', 20)
UNION ALL SELECT 'pooled binary, float query', ordered FROM mc_check('pb', '$1', 20);
RESET mvivf.refine;
RESET mvivf.rerank;

-- inserts, deletes and VACUUM on the compact columns
INSERT INTO mc SELECT i, e, e, e, colpali_pool(e, 3), colpali_pool(e, 3)
FROM (SELECT i, mc_rand(9, 32, i % 4) AS e FROM generate_series(301, 400) i) s;
DELETE FROM mc WHERE id % 7 = 0;
VACUUM mc;
SET mvivf.rerank = 100000;
SELECT 'half' AS col, * FROM mc_check('h', '$1', 10)
UNION ALL SELECT 'binary', * FROM mc_check('b', '$1', 10)
UNION ALL SELECT 'binary, binary query', * FROM mc_check('b', '$1::bitmultivector', 10)
UNION ALL SELECT 'pooled binary', * FROM mc_check('pb', '$1', 10);
RESET mvivf.rerank;
-- a query of another dimension is refused
SELECT id FROM mc ORDER BY b <#> '[101]'::bitmultivector LIMIT 1;

-- an index built empty takes its dimension from the first binary row
CREATE TABLE mce (id int, b bitmultivector);
CREATE INDEX mce_b ON mce USING mvivf (b);
INSERT INTO mce SELECT id, b FROM mc;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM mce ORDER BY b <#> '[10110011101100111011001110110011]'::bitmultivector LIMIT 5;
RESET enable_seqscan;
SET mvivf.rerank = 100000;
SELECT * FROM mc_check('b', '$1', 10, 'mce');
RESET mvivf.rerank;
DROP TABLE mce;

-- Recipe 1: an index on the float column with 1-bit residual codes; the
-- rerank is the float MaxSim of the column ordered by
DROP INDEX mc_h, mc_b, mc_p, mc_pb;
CREATE INDEX mc_f1 ON mc USING mvivf (f) WITH (lists = 16, bits = 1);
SET mvivf.rerank = 100000;
SELECT * FROM mc_check('f', '$1', 10);
RESET mvivf.rerank;
SET mvivf.rerank = 10;
SELECT ordered FROM mc_check('f', '$1', 10);
RESET mvivf.rerank;
DROP INDEX mc_f1;

-- Recipe 2: an index on the binary column chooses n candidates, the outer
-- ORDER BY is the exact float MaxSim of f; with n = every row it is the
-- float sequential scan's answer, with n = 40 the float order of the
-- candidates the binary index returned
CREATE INDEX mc_b ON mc USING mvivf (b) WITH (lists = 16);
CREATE FUNCTION mc_two_stage(q multivector, n int) RETURNS int[] LANGUAGE sql VOLATILE AS $$
	WITH c AS MATERIALIZED (SELECT id, f FROM mc ORDER BY b <#> q LIMIT n)
	SELECT array_agg(id) FROM (SELECT id FROM c ORDER BY f <#> q LIMIT 10) x
$$;
-- EXPLAIN (COSTS OFF) of q as the same text on PostgreSQL 15 to 18: 17 names
-- an InitPlan's output "(InitPlan N).col1" where 15-16 say "$K" (given by
-- "InitPlan N (returns $K)"), and 18 marks disabled nodes
CREATE FUNCTION mc_plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
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
SELECT * FROM mc_plan('WITH c AS MATERIALIZED (SELECT id, f FROM mc ORDER BY b <#> (SELECT q FROM mcq WHERE j = 1) LIMIT 40)
	SELECT id FROM c ORDER BY f <#> (SELECT q FROM mcq WHERE j = 1) LIMIT 10');
SET mvivf.rerank = 100000;
SELECT count(*) FILTER (WHERE mc_two_stage(q, 1000) = (SELECT array_agg(id) FROM (SELECT id FROM mc ORDER BY f <#> q LIMIT 10) x)) AS same_as_float_scan
FROM mcq;
RESET mvivf.rerank;
SELECT count(*) FILTER (WHERE mc_two_stage(q, 40) =
	(SELECT array_agg(id) FROM (SELECT id FROM mc WHERE id = ANY (
		(SELECT array_agg(id) FROM (SELECT id FROM mc ORDER BY b <#> q LIMIT 40) c)::int[])
	 ORDER BY f <#> q LIMIT 10) x)) AS float_order_of_candidates
FROM mcq;
RESET enable_seqscan;
DROP TABLE mc, mcq;
DROP FUNCTION mc_plan(text);
DROP FUNCTION mc_rand(int, int, int);
