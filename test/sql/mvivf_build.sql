-- mvivf build: two-level assignment at a dimension the vector kernels work
-- in whole blocks (32: two 16-wide blocks of residual codes, one AMX k-step
-- where the CPU has AMX), checked through what the codes decide.
SELECT setseed(0.5);
CREATE TABLE mb (id int PRIMARY KEY, emb multivector);
-- 400 documents of 16 rows x 32 dims around 8 topics; a row is its topic's
-- block of 4 dimensions plus noise over all 32
CREATE FUNCTION mb_rand(nrows int, topic int) RETURNS multivector
LANGUAGE sql VOLATILE AS $$
	SELECT l2_normalize(array_agg(r ORDER BY i)::multivector)
	FROM (SELECT i, array_agg(CASE WHEN d / 4 = topic THEN 1.0 ELSE 0 END + random()::real * 0.6 ORDER BY d)::real[] AS r
		  FROM generate_series(1, nrows) i, generate_series(0, 31) d GROUP BY i) s
$$;
INSERT INTO mb SELECT i, mb_rand(16, i % 8) FROM generate_series(1, 400) i;
-- 20 queries: three rows copied from one document each, so that this
-- document is the exact best match, ahead of 49 others of its topic
CREATE TABLE mbq AS
	SELECT j, (SELECT ((emb::real[])[1:3][1:32])::multivector FROM mb WHERE id = j * 19) AS q
	FROM generate_series(1, 20) j;

CREATE FUNCTION mb_exact(q multivector) RETURNS int LANGUAGE sql STABLE AS $$
	SELECT id FROM mb ORDER BY maxsim(emb, q) DESC, id LIMIT 1
$$;
CREATE FUNCTION mb_index(q multivector) RETURNS int LANGUAGE sql STABLE AS $$
	SELECT id FROM mb ORDER BY emb <#> q LIMIT 1
$$;

-- 1,100 lists: tokens go through the coarse groups
CREATE INDEX mb_idx ON mb USING mvivf (emb) WITH (lists = 1100, samples_per_list = 4);
SET enable_seqscan = off;
-- the exact best is each query's own document
SELECT count(*) FILTER (WHERE mb_exact(q) = j * 19) AS own_document_best FROM mbq;
-- refining the best 2 documents of the centroid interaction and reranking
-- only the best of them, the index still finds it: the centroid numbers and
-- residual codes place every copied row next to its original (tokens sent
-- to arbitrary centroids find 6-8 of the 20)
SET mvivf.rerank = 1;
SET mvivf.refine = 2;
SELECT count(*) FILTER (WHERE mb_index(q) = mb_exact(q)) AS found_by_codes FROM mbq;
-- inserted documents are assigned the same way
INSERT INTO mb SELECT i, mb_rand(16, i % 8) FROM generate_series(401, 440) i;
UPDATE mbq SET q = (SELECT ((emb::real[])[1:3][1:32])::multivector FROM mb WHERE id = 400 + j * 2);
SELECT count(*) FILTER (WHERE mb_index(q) = mb_exact(q) AND mb_exact(q) = 400 + j * 2) AS inserted_found FROM mbq;
RESET mvivf.rerank;
RESET mvivf.refine;
RESET enable_seqscan;
DROP TABLE mb, mbq;
DROP FUNCTION mb_rand, mb_exact, mb_index;
