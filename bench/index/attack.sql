-- Checks of the ORDER BY / LIMIT contract of mvivf against the exact scan,
-- for bench/index/attack.sh.  Requires docs(id, emb) with an mvivf index
-- docs_idx and queries(qid, target, q).
--
-- mvb_check(k, filter, off, qtable): for every query of qtable, the rows of
--   SELECT id FROM docs WHERE <filter> ORDER BY emb <#> q LIMIT k OFFSET off
-- with the index (seq scans, bitmaps and sorts off) and with the exact scan
-- (index scans off), compared by their distances, so that ties at the k-th
-- place may come in any order:
--   recall   returned rows whose distance is at most the exact k-th distance,
--            over the exact row count (recall@k, tie-aware)
--   exact    share of queries whose distances equal the exact scan's, place
--            by place (rows and order exact up to ties)
--   short    queries that returned fewer rows than the exact scan
--   misorder queries whose distances were not non-decreasing
--   indexed  share of queries whose plan used docs_idx
--   p50_idx / p50_exact  median latency (ms) of each
CREATE OR REPLACE FUNCTION mvb_check(k int, filter text DEFAULT 'true', off int DEFAULT 0, qtable text DEFAULT 'queries',
	OUT recall float8, OUT exact float8, OUT short int, OUT misorder int, OUT indexed float8,
	OUT p50_idx float8, OUT p50_exact float8)
LANGUAGE plpgsql AS $$
DECLARE
	r record; t0 timestamptz; sql text; plan text; l text;
	ed float8[]; id float8[]; hit int := 0; tot int := 0; nexact int := 0; nidx int := 0; nq int := 0;
	li float8[] := '{}'; le float8[] := '{}'; i int;
BEGIN
	short := 0; misorder := 0;
	sql := format('SELECT coalesce(array_agg(d ORDER BY o), ''{}'') FROM (SELECT emb <#> $1 AS d, row_number() OVER () AS o FROM (SELECT emb FROM docs WHERE %s ORDER BY emb <#> $1 LIMIT %s OFFSET %s) s) s2', filter, k, off);
	PERFORM '[[1]]'::multivector;
	CREATE TEMP TABLE IF NOT EXISTS mvb_tick (x int);
	FOR r IN EXECUTE format('SELECT qid, q FROM %I ORDER BY qid', qtable) LOOP
		nq := nq + 1;
		-- stored pages' scores are kept while the query and the snapshot
		-- stay the same (src/maxsim_stream.c): a write before each timed
		-- statement gives it a new command id, so that neither reads the
		-- scores the other computed
		INSERT INTO mvb_tick VALUES (0);
		SET LOCAL enable_indexscan = on; SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off;
		t0 := clock_timestamp();
		EXECUTE sql INTO id USING r.q;
		li := li || extract(epoch FROM clock_timestamp() - t0) * 1000;
		plan := '';
		FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || sql USING r.q LOOP plan := plan || l; END LOOP;
		INSERT INTO mvb_tick VALUES (0);
		SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = on; SET LOCAL enable_sort = on; SET LOCAL enable_bitmapscan = on;
		t0 := clock_timestamp();
		EXECUTE sql INTO ed USING r.q;
		le := le || extract(epoch FROM clock_timestamp() - t0) * 1000;
		IF plan LIKE '%Index Scan using docs_idx%' THEN nidx := nidx + 1; END IF;
		IF coalesce(array_length(id, 1), 0) < coalesce(array_length(ed, 1), 0) THEN short := short + 1; END IF;
		IF id IS NOT DISTINCT FROM ed THEN nexact := nexact + 1; END IF;
		FOR i IN 2 .. coalesce(array_length(id, 1), 0) LOOP
			IF id[i] < id[i - 1] THEN misorder := misorder + 1; EXIT; END IF;
		END LOOP;
		tot := tot + coalesce(array_length(ed, 1), 0);
		IF array_length(ed, 1) > 0 THEN
			hit := hit + (SELECT count(*) FROM unnest(id) x WHERE x <= ed[array_length(ed, 1)]);
		END IF;
	END LOOP;
	recall := CASE WHEN tot = 0 THEN 1 ELSE hit::float8 / tot END;
	exact := nexact::float8 / greatest(nq, 1);
	indexed := nidx::float8 / greatest(nq, 1);
	SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) INTO p50_idx FROM unnest(li) x;
	SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) INTO p50_exact FROM unnest(le) x;
END $$;
