-- Document lists (format version 3): CREATE INDEX writes, per centroid, the
-- documents with a token assigned to it; a scan bounds every listed
-- document's centroid interaction from mvivf.probes lists per query row and
-- reads the codes of only the documents it needs.  Rows inserted after the
-- build are not listed: every scan scores them fully.  The order stays exact.
SELECT setseed(0.75);
-- n random multivectors of nrows L2-normalised rows of dim dimensions
CREATE FUNCTION ml_random(n int, nrows int, dim int) RETURNS TABLE (i int, v multivector)
LANGUAGE sql AS $$
SELECT i, l2_normalize(array_agg(r ORDER BY k)::multivector)
FROM (SELECT i, k, array_agg(random()::real - 0.5 ORDER BY d)::real[] AS r
	  FROM generate_series(1, n) i, generate_series(1, nrows) k, generate_series(1, dim) d
	  GROUP BY i, k) s
GROUP BY i
$$;
CREATE TABLE ml (id int PRIMARY KEY, emb multivector);
INSERT INTO ml SELECT * FROM ml_random(600, 10, 16);
CREATE TABLE mlq AS SELECT i AS j, v AS q FROM ml_random(6, 5, 16);
CREATE INDEX ml_idx ON ml USING mvivf (emb) WITH (lists = 64);
SET enable_seqscan = off;
SET jit = off;
SET mvivf.refine = 16;
SET mvivf.probes = 8;	-- of 64 lists: bounds, not exact values

-- the counters of the mvivf line of EXPLAIN (ANALYZE)
CREATE FUNCTION ml_counters(q multivector, lim int, OUT tokens bigint,
	OUT refined bigint, OUT probed bigint, OUT postings bigint, OUT exact bigint)
LANGUAGE plpgsql AS $$
DECLARE l text; m text[];
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) '
			'SELECT id FROM ml ORDER BY emb <#> $1 LIMIT ' || lim USING q LOOP
		m := regexp_match(l, '^mvivf ml_idx: .* tokens=(\d+) refined=(\d+) .* probed=(\d+) postings=(\d+) exact=(\d+) ');
		IF m IS NOT NULL THEN
			tokens := m[1]; refined := m[2]; probed := m[3]; postings := m[4]; exact := m[5];
		END IF;
	END LOOP;
END $$;
-- are the rows of an index scan in exact distance order, and as many as asked?
CREATE FUNCTION ml_ordered(q multivector, lim int) RETURNS bool LANGUAGE sql AS $$
	SELECT coalesce(bool_and(d >= prev), true) AND count(*) = lim
	FROM (SELECT d, lag(d, 1, '-infinity') OVER (ORDER BY ord) AS prev
		  FROM (SELECT emb <#> q AS d, row_number() OVER () AS ord
				FROM (SELECT emb FROM ml ORDER BY emb <#> q LIMIT lim) s) t) u
$$;
-- the exact top rows, by the sequential scan
CREATE FUNCTION ml_exact(q multivector, lim int) RETURNS int[] LANGUAGE plpgsql AS $$
DECLARE ids int[];
BEGIN
	SET LOCAL enable_indexscan = off;
	SET LOCAL enable_seqscan = on;
	ids := array(SELECT id FROM ml ORDER BY emb <#> q, id LIMIT lim);
	RETURN ids;
END $$;
CREATE FUNCTION ml_index(q multivector, lim int) RETURNS int[] LANGUAGE sql AS $$
	SELECT array(SELECT id FROM ml ORDER BY emb <#> q LIMIT lim)
$$;

-- lists were built and probed: a few lists per query row, a share of the
-- entries, and the exact centroid interaction of only some documents
SELECT c.probed > 0 AS probed, c.postings > 0 AS postings,
	c.exact >= 16 AS exact_enough, c.tokens > 0 AS tokens_counted
FROM mlq, ml_counters(q, 10) c WHERE j = 1;
SET mvivf.probes = 4;
SELECT bool_and(c.probed <= 5 * 4) AS at_most_probes_per_row FROM mlq, ml_counters(q, 10) c;
SET mvivf.probes = 8;

-- exact order with pruning, every LIMIT row, for each query; probing every
-- list bounds nothing away, and mvivf.miss_tolerance = 0 is exact
SELECT bool_and(ml_ordered(q, 10)) AS ordered_10, bool_and(ml_ordered(q, 200)) AS ordered_200 FROM mlq;
SET mvivf.miss_tolerance = 0;
SELECT count(*) FILTER (WHERE ml_index(q, 10) = ml_exact(q, 10)) AS exact_queries FROM mlq;
RESET mvivf.miss_tolerance;
SET mvivf.probes = 64;
SELECT bool_and(ml_ordered(q, 10)) AS ordered_all_lists FROM mlq;
SET mvivf.probes = 8;

-- mvivf.probes = 0 reads every document's centroid numbers instead: nothing
-- probed, every token scored by centroid interaction, rows still in order
SET mvivf.probes = 0;
SELECT c.probed = 0 AS none_probed, c.tokens = (SELECT sum(num_vectors(emb)) FROM ml) AS all_tokens
FROM mlq, ml_counters(q, 10) c WHERE j = 1;
SELECT bool_and(ml_ordered(q, 10)) AS ordered_full_pass FROM mlq;
SET mvivf.probes = 8;

-- a row inserted after the build is not listed, yet every scan finds it:
-- the query's own rows are its best match by far
INSERT INTO ml SELECT 1000 + j, q FROM mlq WHERE j IN (2, 5);
SELECT count(*) FILTER (WHERE (ml_index(q, 1))[1] = 1000 + j) AS inserted_found FROM mlq WHERE j IN (2, 5);
SELECT bool_and(ml_ordered(q, 10)) AS ordered_after_insert FROM mlq;
-- both are refined by every scan, on top of mvivf.refine
SELECT c.refined >= 16 + 2 AS tail_refined FROM mlq, ml_counters(q, 10) c WHERE j = 1;

-- dead documents stay listed; scans skip them
DELETE FROM ml WHERE id = 1002 OR id % 7 = 0;
VACUUM ml;
SELECT count(*) FILTER (WHERE (ml_index(q, 1))[1] = 1000 + j) AS still_found,
	bool_and(NOT (ml_index(q, 50) && ARRAY[1002])) AS deleted_gone FROM mlq WHERE j IN (2, 5);
SELECT bool_and(ml_ordered(q, 10)) AS ordered_after_vacuum,
	bool_and(NOT EXISTS (SELECT 1 FROM unnest(ml_index(q, 100)) i WHERE i % 7 = 0)) AS no_dead
FROM mlq;

-- REINDEX lists the inserted row
REINDEX INDEX ml_idx;
SELECT (ml_index(q, 1))[1] = 1005 AS found_after_reindex FROM mlq WHERE j = 5;

-- an index built on an empty table has no lists: scans rerank every row
CREATE TABLE mle (id int, emb multivector);
CREATE INDEX mle_idx ON mle USING mvivf (emb);
INSERT INTO mle SELECT id, emb FROM ml WHERE id <= 50;
SELECT array(SELECT id FROM mle ORDER BY emb <#> (SELECT q FROM mlq WHERE j = 1) LIMIT 5) =
	array(SELECT id FROM ml WHERE id <= 50 ORDER BY maxsim(emb, (SELECT q FROM mlq WHERE j = 1)) DESC LIMIT 5) AS empty_build_exact;
DROP TABLE mle;
DROP TABLE ml, mlq;
DROP FUNCTION ml_counters, ml_ordered, ml_exact, ml_index;

-- probing needs the tables of every query row in one pass; their memory is
-- counted as allocated (ColPali queries of 17-32 rows share one copy of the
-- centroid scores with the int8 kernels) against work_mem x
-- hash_mem_multiplier: 2,000 lists of 128 dimensions and 30-row queries
-- probe within 512 kB of work_mem, where the estimate before (twice the
-- scores, work_mem alone) took full passes over the forward store
CREATE TABLE mlw (id int, emb multivector);
INSERT INTO mlw SELECT * FROM ml_random(300, 30, 128);
CREATE TABLE mlwq AS SELECT i AS j, v AS q FROM ml_random(3, 30, 128);
CREATE INDEX mlw_idx ON mlw USING mvivf (emb) WITH (lists = 2000, samples_per_list = 4);
RESET mvivf.refine;
RESET mvivf.probes;
SET work_mem = '512kB';
SET hash_mem_multiplier = 2;
CREATE FUNCTION mlw_passes(q multivector, OUT passes int, OUT probed bigint)
LANGUAGE plpgsql AS $$
DECLARE l text; m text[];
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) '
			'SELECT id FROM mlw ORDER BY emb <#> $1 LIMIT 10' USING q LOOP
		m := regexp_match(l, '^mvivf mlw_idx: .* passes=(\d+) .* probed=(\d+) ');
		IF m IS NOT NULL THEN
			passes := m[1]; probed := m[2];
		END IF;
	END LOOP;
END $$;
SELECT bool_and(p.passes = 1) AS one_pass, bool_and(p.probed > 0) AS probed
FROM mlwq, LATERAL mlw_passes(q) p;
SET enable_indexscan = off;
CREATE TEMP TABLE mlw_exact AS
SELECT j, array(SELECT emb <#> q FROM mlw ORDER BY emb <#> q LIMIT 10) AS d FROM mlwq;
RESET enable_indexscan;
SELECT bool_and(array(SELECT emb <#> q FROM mlw ORDER BY emb <#> q LIMIT 10) = e.d) AS same_distances
FROM mlwq JOIN mlw_exact e USING (j);
-- two scans open at once (cursors fetched in turn) each have their own
-- arrays: the larger ones (the centroid scores, 2,000 lists x 32 rows) come
-- from blocks the backend keeps between scans, lent to one scan at a time
CREATE FUNCTION mlw_interleaved(OUT same1 bool, OUT same2 bool)
LANGUAGE plpgsql AS $$
DECLARE
	c1 refcursor; c2 refcursor; q1 multivector; q2 multivector;
	a1 float8[] := '{}'; a2 float8[] := '{}'; x float8; i int;
BEGIN
	SELECT q INTO q1 FROM mlwq WHERE j = 1;
	SELECT q INTO q2 FROM mlwq WHERE j = 2;
	OPEN c1 FOR EXECUTE 'SELECT emb <#> $1 FROM mlw ORDER BY emb <#> $1' USING q1;
	OPEN c2 FOR EXECUTE 'SELECT emb <#> $1 FROM mlw ORDER BY emb <#> $1' USING q2;
	FOR i IN 1 .. 10 LOOP
		FETCH c1 INTO x; a1 := a1 || x;
		FETCH c2 INTO x; a2 := a2 || x;
	END LOOP;
	CLOSE c1;
	CLOSE c2;
	same1 := a1 = (SELECT d FROM mlw_exact WHERE j = 1);
	same2 := a2 = (SELECT d FROM mlw_exact WHERE j = 2);
END $$;
SELECT * FROM mlw_interleaved();
RESET work_mem;
RESET hash_mem_multiplier;
DROP TABLE mlw, mlwq, mlw_exact;
DROP FUNCTION mlw_passes, mlw_interleaved, ml_random;
