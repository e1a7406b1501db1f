-- EXPLAIN (ANALYZE) shows what mvivf index scans did
SELECT setseed(0.5);
CREATE TABLE mvexp (id int, emb multivector);
INSERT INTO mvexp
SELECT i, l2_normalize(array_agg(r ORDER BY k)::multivector)
FROM (SELECT i, k, array_agg(random()::real - 0.5 ORDER BY d)::real[] AS r
	  FROM generate_series(1, 200) i, generate_series(1, 5 + i % 4) k, generate_series(1, 8) d
	  GROUP BY i, k) s
GROUP BY i;
CREATE INDEX mvexp_idx ON mvexp USING mvivf (emb) WITH (lists = 8);
SET enable_seqscan = off;
-- with the sort too: PostgreSQL 18 compares disabled plans by their costs,
-- where 15-17 took the index for a filter the planner thinks it serves badly
SET enable_sort = off;
SET mvivf.rerank = 30;

-- the counters of the mvivf line of EXPLAIN (ANALYZE) output, as a record
CREATE FUNCTION mvexp_counters(q text, OUT scans bigint, OUT documents bigint,
	OUT tokens bigint, OUT refined bigint, OUT pages bigint, OUT reranked bigint,
	OUT lines int)
LANGUAGE plpgsql AS $$
DECLARE l text; m text[];
BEGIN
	lines := 0;
	FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
		m := regexp_match(l, '^mvivf mvexp_idx: scans=(\d+) documents=(\d+) tokens=(\d+) refined=(\d+) pages=(\d+) passes=\d+ reranked=(\d+)');
		IF m IS NOT NULL THEN
			lines := lines + 1;
			scans := m[1]; documents := m[2]; tokens := m[3]; refined := m[4];
			pages := m[5]; reranked := m[6];
		END IF;
	END LOOP;
END $$;

-- one scan: every live document and token scored by centroid interaction,
-- mvivf.refine of them from their codes, 30 reranked for LIMIT 5
SELECT c.lines, c.scans, c.documents = (SELECT count(*) FROM mvexp) AS all_documents,
	c.tokens = (SELECT sum(num_vectors(emb)) FROM mvexp) AS all_tokens,
	c.refined = least(current_setting('mvivf.refine')::int, c.documents) AS refined_ok, c.pages > 0 AS pages_read,
	c.reranked >= 30 AS reranked_first_batch
FROM mvexp_counters('SELECT id FROM mvexp ORDER BY emb <#> ''[[1,0,0,0,0,0,0,0],[0,1,0,0,0,0,0,0]]'' LIMIT 5') c;

-- a filter that rejects most rows makes the scan rerank further batches
SELECT c.reranked > 30 AS reranked_more
FROM mvexp_counters('SELECT id FROM mvexp WHERE id % 20 = 0 ORDER BY emb <#> ''[[1,0,0,0,0,0,0,0]]'' LIMIT 8') c;

-- the adaptive rerank's error margin and why it stopped: with a LIMIT it
-- stops on its bound (or after every document), with mvivf.max_rerank on the cap
CREATE FUNCTION mvexp_stop(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ' || q LOOP
		IF l ~ '^mvivf mvexp_idx: ' THEN
			RETURN substring(l FROM ' margin=[0-9.e+-]+ stop=(\S+)$');
		END IF;
	END LOOP;
	RETURN NULL;
END $$;
SELECT mvexp_stop('SELECT id FROM mvexp ORDER BY emb <#> ''[[1,0,0,0,0,0,0,0]]'' LIMIT 3') IN ('bound', 'all') AS stop_shown;
SET mvivf.max_rerank = 1;
SET mvivf.rerank = 1;
SELECT mvexp_stop('SELECT id FROM mvexp ORDER BY emb <#> ''[[1,0,0,0,0,0,0,0]]'' LIMIT 3') AS stop_capped;
RESET mvivf.max_rerank;
SET mvivf.rerank = 30;

-- deleted rows: the scan scores only live documents
DELETE FROM mvexp WHERE id <= 50;
VACUUM mvexp;
SELECT c.documents = (SELECT count(*) FROM mvexp) AS live_documents_only
FROM mvexp_counters('SELECT id FROM mvexp ORDER BY emb <#> ''[[1,0,0,0,0,0,0,0]]'' LIMIT 5') c;

-- no line for plans without the index
SET enable_seqscan = on;
RESET enable_sort;
SET enable_indexscan = off;
SELECT c.lines AS lines_without_index
FROM mvexp_counters('SELECT id FROM mvexp ORDER BY emb <#> ''[[1,0,0,0,0,0,0,0]]'' LIMIT 5') c;
RESET enable_indexscan;
RESET mvivf.rerank;

-- plain EXPLAIN says what the scan's rows are under the settings in force
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM mvexp ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 5;
SET mvivf.miss_tolerance = 0;
SET mvivf.iterative_scan = off;
SET mvivf.candidates = 50;
EXPLAIN (COSTS OFF) SELECT id FROM mvexp ORDER BY emb <#> '[[1,0,0,0,0,0,0,0]]' LIMIT 5;
RESET mvivf.miss_tolerance;
RESET mvivf.iterative_scan;
RESET mvivf.candidates;
-- no line without an mvivf scan
RESET enable_seqscan;
EXPLAIN (COSTS OFF) SELECT count(*) FROM mvexp;
DROP TABLE mvexp;
DROP FUNCTION mvexp_counters(text), mvexp_stop(text);
