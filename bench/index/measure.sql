-- Measure recall@10 and latency of the mvivf index against the exact scan.
-- Requires tables docs(id, emb) with an mvivf index and queries(qid, target, q).
-- Ground truth: exact scan (index scans disabled), computed once into truth,
-- with the exact 10th distance (kth), so that recall counts a row tied with
-- the 10th (a copy of a page) as found.
CREATE OR REPLACE FUNCTION mvb_truth() RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record; t0 timestamptz; ids int[]; kth float8;
BEGIN
	SET LOCAL enable_indexscan = off;
	SET LOCAL jit = off;	-- JIT compile time would dominate these timings
	DROP TABLE IF EXISTS truth;
	CREATE TABLE truth (qid int, ids int[], ms float8, kth float8);
	FOR r IN SELECT qid, q FROM queries ORDER BY qid LOOP
		t0 := clock_timestamp();
		SELECT array_agg(id ORDER BY d), max(d) INTO ids, kth
		FROM (SELECT id, emb <#> r.q AS d FROM docs ORDER BY emb <#> r.q LIMIT 10) s;
		INSERT INTO truth VALUES (r.qid, ids, extract(epoch FROM clock_timestamp() - t0) * 1000, kth);
	END LOOP;
END $$;

-- recall@10 and latency percentiles of the index at the current settings; a
-- returned row counts as found when it is in the truth or as near as its
-- 10th row (ties at the 10th place may come in any order)
CREATE OR REPLACE FUNCTION mvb_run(OUT recall float8, OUT p50_ms float8, OUT p95_ms float8)
LANGUAGE plpgsql AS $$
DECLARE r record; t0 timestamptz; ids int[]; hits int := 0; n int := 0; lat float8[] := '{}';
BEGIN
	SET LOCAL enable_seqscan = off;
	SET LOCAL jit = off;
	FOR r IN SELECT t.qid, q.q, t.ids, t.kth FROM truth t JOIN queries q USING (qid) ORDER BY qid LOOP
		t0 := clock_timestamp();
		ids := array(SELECT id FROM docs ORDER BY emb <#> r.q LIMIT 10);
		lat := lat || extract(epoch FROM clock_timestamp() - t0) * 1000;
		hits := hits + (SELECT count(*) FROM unnest(ids) i WHERE i = ANY (r.ids)) +
			(SELECT count(*) FROM docs d WHERE d.id = ANY (ids) AND NOT d.id = ANY (r.ids)
				AND r.kth IS NOT NULL AND d.emb <#> r.q <= r.kth);
		n := n + 10;
	END LOOP;
	recall := hits::float8 / n;
	SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x), percentile_cont(0.95) WITHIN GROUP (ORDER BY x)
		INTO p50_ms, p95_ms FROM unnest(lat) x;
END $$;

-- mean documents refined and reranked per query at the current settings,
-- from the mvivf line of EXPLAIN (ANALYZE)
CREATE OR REPLACE FUNCTION mvb_depth(OUT refined float8, OUT reranked float8)
LANGUAGE plpgsql AS $$
DECLARE r record; l text; m text[]; sref float8 := 0; srr float8 := 0; n int := 0;
BEGIN
	SET LOCAL enable_seqscan = off;
	SET LOCAL jit = off;
	PERFORM '[[1]]'::multivector;	-- the library is loaded: EXPLAIN shows the line
	FOR r IN SELECT q FROM queries ORDER BY qid LOOP
		FOR l IN EXECUTE 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) '
				'SELECT id FROM docs ORDER BY emb <#> $1 LIMIT 10' USING r.q LOOP
			m := regexp_match(l, 'refined=(\d+) .* reranked=(\d+)');
			IF m IS NOT NULL THEN
				sref := sref + m[1]::float8; srr := srr + m[2]::float8; n := n + 1;
			END IF;
		END LOOP;
	END LOOP;
	refined := sref / greatest(n, 1);
	reranked := srr / greatest(n, 1);
END $$;
