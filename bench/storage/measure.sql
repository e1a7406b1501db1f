-- Helpers of bench/storage/run.sh.  Tables: queries(qid, target, q
-- multivector); truth(qid, ids) is filled by st_truth() from the float exact
-- scan.  Every timed statement is one query text with the query as $1, run
-- once per query; p50 over the queries.

-- the float exact answer, and its latency (the "float" row)
CREATE OR REPLACE FUNCTION st_truth() RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record; t0 timestamptz; ids int[];
BEGIN
	SET LOCAL enable_indexscan = off;
	SET LOCAL jit = off;
	DROP TABLE IF EXISTS truth;
	CREATE TABLE truth (qid int, ids int[], ms float8);
	FOR r IN SELECT qid, q FROM queries ORDER BY qid LOOP
		t0 := clock_timestamp();
		ids := array(SELECT id FROM docs_f ORDER BY emb <#> r.q LIMIT 10);
		INSERT INTO truth VALUES (r.qid, ids, extract(epoch FROM clock_timestamp() - t0) * 1000);
	END LOOP;
END $$;

-- recall@10 against truth and p50 latency of `stmt` (returns int[] of ids,
-- takes the float query as $1); index scans allowed or not
CREATE OR REPLACE FUNCTION st_run(stmt text, use_index bool, max_queries int DEFAULT NULL,
	OUT recall float8, OUT p50_ms float8)
LANGUAGE plpgsql AS $$
DECLARE r record; t0 timestamptz; ids int[]; hits int := 0; n int := 0; lat float8[] := '{}';
BEGIN
	IF use_index THEN
		SET LOCAL enable_seqscan = off;
	ELSE
		SET LOCAL enable_indexscan = off;
		SET LOCAL enable_bitmapscan = off;
	END IF;
	SET LOCAL jit = off;
	FOR r IN SELECT t.qid, q.q, t.ids FROM truth t JOIN queries q USING (qid) ORDER BY qid LIMIT max_queries LOOP
		t0 := clock_timestamp();
		EXECUTE stmt INTO ids USING r.q;
		lat := lat || extract(epoch FROM clock_timestamp() - t0) * 1000;
		hits := hits + (SELECT count(*) FROM unnest(ids) i WHERE i = ANY (r.ids));
		n := n + 10;
	END LOOP;
	recall := hits::float8 / n;
	SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) INTO p50_ms FROM unnest(lat) x;
END $$;

-- heap + TOAST (+ index) bytes per stored token of table tbl, column emb
CREATE OR REPLACE FUNCTION st_bytes(tbl regclass, idx regclass DEFAULT NULL) RETURNS float8
LANGUAGE plpgsql AS $$
DECLARE tokens float8; b float8;
BEGIN
	EXECUTE format('SELECT sum(num_vectors(emb)) FROM %s', tbl) INTO tokens;
	b := pg_table_size(tbl) + coalesce(pg_relation_size(idx), 0);
	RETURN b / tokens;
END $$;
