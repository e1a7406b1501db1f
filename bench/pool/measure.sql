-- Helpers of bench/pool/run.sh.  Tables docs*(id, emb) and queries(qid, target, q).

-- |a ∩ b| / 10
CREATE OR REPLACE FUNCTION pb_overlap(a int[], b int[]) RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
	SELECT count(*)::float8 / 10 FROM unnest(a) x WHERE x = ANY (b)
$$;

-- exact top 10 (sequential scan) of every query over table tbl, with latency
CREATE TABLE exact (tbl text, qid int, ids int[], ms float8);
CREATE OR REPLACE FUNCTION pb_exact(tbl text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record; t0 timestamptz; ids int[];
BEGIN
	SET LOCAL enable_indexscan = off;
	SET LOCAL jit = off;
	FOR r IN SELECT qid, q FROM queries ORDER BY qid LOOP
		t0 := clock_timestamp();
		EXECUTE format('SELECT array(SELECT id FROM %I ORDER BY emb <#> $1 LIMIT 10)', tbl) INTO ids USING r.q;
		INSERT INTO exact VALUES (tbl, r.qid, ids, extract(epoch FROM clock_timestamp() - t0) * 1000);
	END LOOP;
END $$;

-- top 10 through the mvivf index, its latency, and whether the answer is in
-- exact order of the column's MaxSim (distances non-decreasing)
CREATE TABLE indexed (tbl text, qid int, ids int[], ms float8, in_order bool);
CREATE OR REPLACE FUNCTION pb_indexed(tbl text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record; t0 timestamptz; ids int[]; ms float8; d float8[];
BEGIN
	SET LOCAL enable_seqscan = off;
	SET LOCAL jit = off;
	FOR r IN SELECT qid, q FROM queries ORDER BY qid LOOP
		t0 := clock_timestamp();
		EXECUTE format('SELECT array(SELECT id FROM %I ORDER BY emb <#> $1 LIMIT 10)', tbl) INTO ids USING r.q;
		ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
		EXECUTE format('SELECT array(SELECT t.emb <#> $1 FROM unnest($2::int[]) WITH ORDINALITY u(id, k)
						JOIN %I t USING (id) ORDER BY k)', tbl) INTO d USING r.q, ids;
		INSERT INTO indexed VALUES (tbl, r.qid, ids, ms,
			(SELECT coalesce(bool_and(d[k] <= d[k + 1]), true) FROM generate_series(1, array_length(d, 1) - 1) k)
			AND array_length(ids, 1) = 10);
	END LOOP;
END $$;
