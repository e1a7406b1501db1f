-- mvivf inserts and the backend's quantizer cache.  Inserts and scans take
-- the centroids from a per-backend cache; after the index is rebuilt in the
-- same session (REINDEX, TRUNCATE, a REINDEX rolled back) they must use the
-- centroids of the index as it is now.  mvi_self_hits counts the documents
-- that the approximate stage alone ranks first for their own rows (one
-- document reranked, none beyond): the codes of every document and the
-- scan's centroid scores must come from the same centroids for that.  Each
-- build trains on rows in one half of the 16 dimensions, the next build on
-- the other half, so that the centroids of one build say nothing about the
-- rows of the next.
SELECT setseed(0.5);
CREATE FUNCTION mvi_rand(nrows int, half int) RETURNS multivector
LANGUAGE sql VOLATILE AS $$
	SELECT l2_normalize(array_agg(r ORDER BY i)::multivector)
	FROM (SELECT i, array_agg(CASE WHEN d / 8 = half THEN (random() - 0.5)::real ELSE 0 END ORDER BY d)::real[] AS r
		  FROM generate_series(1, nrows) i, generate_series(0, 15) d GROUP BY i) s
$$;
CREATE TABLE mvi (id int, emb multivector);
CREATE FUNCTION mvi_self_hits(lo int, hi int) RETURNS bigint
LANGUAGE sql STABLE AS $$
	SELECT count(*) FILTER (WHERE (SELECT id FROM mvi ORDER BY emb <#> t.emb LIMIT 1) = t.id)
	FROM mvi t WHERE t.id BETWEEN lo AND hi
$$;
-- 4,800 tokens of 16 dimensions; 1,100 lists: the two-level assignment
INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(1, 300) i;
CREATE INDEX mvi_idx ON mvi USING mvivf (emb) WITH (lists = 1100, samples_per_list = 4);
SET enable_seqscan = off;
SET mvivf.iterative_scan = off;
SET mvivf.candidates = 1;

-- inserts fill the cache; built and inserted documents are found by their codes
INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(1001, 1010) i;
SELECT mvi_self_hits(1, 10) AS built, mvi_self_hits(1001, 1010) AS inserted;

-- REINDEX over other rows: new centroids, the same index.  Rows of the other
-- half are unlike every row the index was built on: their insert says so
-- (a NOTICE whose hint is REINDEX, src/index/mvdrift.c)
DELETE FROM mvi;
INSERT INTO mvi SELECT i, mvi_rand(16, 1) FROM generate_series(2001, 2300) i;
REINDEX INDEX mvi_idx;
INSERT INTO mvi SELECT i, mvi_rand(16, 1) FROM generate_series(3001, 3010) i;
SELECT mvi_self_hits(2001, 2010) AS built, mvi_self_hits(3001, 3010) AS inserted;
-- an exact scan finds every inserted row at its place
SET mvivf.iterative_scan = strict_order;
SET mvivf.miss_tolerance = 0;
SELECT count(*) FILTER (WHERE (SELECT id FROM mvi ORDER BY emb <#> t.emb LIMIT 1) = t.id) AS found
FROM mvi t WHERE t.id BETWEEN 3001 AND 3010;
RESET mvivf.miss_tolerance;
SET mvivf.iterative_scan = off;

-- a REINDEX rolled back: the old centroids are the index's again
BEGIN;
DELETE FROM mvi;
INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(4001, 4300) i;
REINDEX INDEX mvi_idx;
INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(5001, 5010) i;
SELECT mvi_self_hits(4001, 4010) AS built, mvi_self_hits(5001, 5010) AS inserted;
ROLLBACK;
INSERT INTO mvi SELECT i, mvi_rand(16, 1) FROM generate_series(6001, 6010) i;
SELECT mvi_self_hits(2001, 2010) AS built, mvi_self_hits(3001, 3010) AS inserted_before,
	mvi_self_hits(6001, 6010) AS inserted_after;

-- TRUNCATE leaves an untrained index (every row reranked exactly); REINDEX
-- trains it again
TRUNCATE mvi;
INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(7001, 7300) i;
SET mvivf.iterative_scan = strict_order;
SET mvivf.miss_tolerance = 0;
SELECT mvi_self_hits(7001, 7010) AS untrained;
SET mvivf.iterative_scan = off;
RESET mvivf.miss_tolerance;
REINDEX INDEX mvi_idx;
INSERT INTO mvi SELECT i, mvi_rand(16, 0) FROM generate_series(8001, 8010) i;
SELECT mvi_self_hits(7001, 7010) AS built, mvi_self_hits(8001, 8010) AS inserted;

-- a table created, filled, indexed and truncated in one transaction: the
-- index is rebuilt in place (same relfilenode), untrained
BEGIN;
CREATE TABLE mvi2 (id int, emb multivector);
INSERT INTO mvi2 SELECT i, mvi_rand(16, 1) FROM generate_series(1, 300) i;
CREATE INDEX mvi2_idx ON mvi2 USING mvivf (emb) WITH (lists = 1100, samples_per_list = 4);
INSERT INTO mvi2 SELECT i, mvi_rand(16, 1) FROM generate_series(1001, 1005) i;
SELECT pg_relation_filenode('mvi2_idx') AS mvi2_node \gset
TRUNCATE mvi2;
SELECT pg_relation_filenode('mvi2_idx') = :mvi2_node AS in_place;
INSERT INTO mvi2 SELECT i, mvi_rand(16, 1) FROM generate_series(2001, 2005) i;
SET LOCAL mvivf.iterative_scan = strict_order;
SET LOCAL mvivf.miss_tolerance = 0;
SELECT count(*) FILTER (WHERE (SELECT id FROM mvi2 ORDER BY emb <#> t.emb LIMIT 1) = t.id) AS found
FROM mvi2 t;
COMMIT;

-- the build trains on a random sample of the whole table: 300 documents in
-- one half of the dimensions, then 300 in the other; the sample (4,400 of
-- 9,600 tokens) must not be the first tokens in scan order, which would
-- leave the second half without centroids of its own
CREATE TABLE mvi3 (id int, emb multivector);
INSERT INTO mvi3 SELECT i, mvi_rand(16, 0) FROM generate_series(1, 300) i;
INSERT INTO mvi3 SELECT i, mvi_rand(16, 1) FROM generate_series(301, 600) i;
CREATE INDEX mvi3_idx ON mvi3 USING mvivf (emb) WITH (lists = 1100, samples_per_list = 4);
SELECT count(*) FILTER (WHERE (SELECT id FROM mvi3 ORDER BY emb <#> t.emb LIMIT 1) = t.id) AS first_half,
	(SELECT count(*) FILTER (WHERE (SELECT id FROM mvi3 ORDER BY emb <#> u.emb LIMIT 1) = u.id)
	 FROM mvi3 u WHERE u.id BETWEEN 591 AND 600) AS second_half
FROM mvi3 t WHERE t.id BETWEEN 1 AND 10;

RESET mvivf.iterative_scan;
RESET mvivf.candidates;
RESET enable_seqscan;
DROP TABLE mvi, mvi2, mvi3;
DROP FUNCTION mvi_self_hits, mvi_rand;
