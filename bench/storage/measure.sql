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

-- Side by side: for each query in turn, every statement once (round robin),
-- so that all of them see the same machine load; recall@10 against truth and
-- p50 latency per statement.  use_index[i]: index scans allowed (else only
-- sequential scans).  settings[i]: 'name=value;name=value' applied to that
-- statement only (the mvivf settings start from their defaults each time,
-- colpali.maxsim_screening from on).
CREATE OR REPLACE FUNCTION st_compare(names text[], stmts text[], use_index bool[],
	settings text[], max_queries int DEFAULT NULL)
RETURNS TABLE (pos int, name text, recall float8, p50_ms float8)
LANGUAGE plpgsql AS $$
DECLARE r record; t0 timestamptz; ids int[]; i int; kv text; rerank0 text; refine0 text;
BEGIN
	PERFORM maxsim_kernel();	-- loads the library, which defines the mvivf settings
	rerank0 := current_setting('mvivf.rerank');
	refine0 := current_setting('mvivf.refine');
	SET LOCAL jit = off;
	CREATE TEMP TABLE IF NOT EXISTS st_lat (pos int, qid int, ms float8, hits int);
	TRUNCATE st_lat;
	FOR r IN SELECT t.qid, q.q, t.ids FROM truth t JOIN queries q USING (qid) ORDER BY qid LIMIT max_queries LOOP
		FOR i IN 1 .. array_length(stmts, 1) LOOP
			PERFORM set_config('enable_seqscan', CASE WHEN use_index[i] THEN 'off' ELSE 'on' END, true);
			PERFORM set_config('enable_indexscan', CASE WHEN use_index[i] THEN 'on' ELSE 'off' END, true);
			PERFORM set_config('enable_bitmapscan', 'off', true);
			PERFORM set_config('mvivf.rerank', rerank0, true);
			PERFORM set_config('mvivf.refine', refine0, true);
			PERFORM set_config('colpali.maxsim_screening', 'on', true);
			FOREACH kv IN ARRAY string_to_array(coalesce(settings[i], ''), ';') LOOP
				CONTINUE WHEN kv = '';
				PERFORM set_config(split_part(kv, '=', 1), split_part(kv, '=', 2), true);
			END LOOP;
			t0 := clock_timestamp();
			EXECUTE stmts[i] INTO ids USING r.q;
			INSERT INTO st_lat VALUES (i, r.qid, extract(epoch FROM clock_timestamp() - t0) * 1000,
				(SELECT count(*) FROM unnest(ids) x WHERE x = ANY (r.ids)));
		END LOOP;
	END LOOP;
	RETURN QUERY SELECT l.pos, names[l.pos], sum(l.hits)::float8 / (10 * count(*)),
		percentile_cont(0.5) WITHIN GROUP (ORDER BY l.ms)
	FROM st_lat l GROUP BY l.pos ORDER BY l.pos;
END $$;
