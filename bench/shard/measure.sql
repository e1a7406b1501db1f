-- Latency of one top-10 statement over every query of the queries table.
-- sb_run(label, sql): sql is run once per query with $1 = the query
-- multivector and must return int[] (the ids, best first); one row per query
-- goes into runs(label, qid, ms, ids).
CREATE TABLE IF NOT EXISTS runs (label text, qid int, ms float8, ids int[]);
CREATE OR REPLACE FUNCTION sb_run(label text, sql text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE r record; t0 timestamptz; res int[];
BEGIN
	FOR r IN SELECT qid, q FROM queries ORDER BY qid LOOP
		t0 := clock_timestamp();
		EXECUTE sql INTO res USING r.q;
		INSERT INTO runs VALUES (label, r.qid, extract(epoch FROM clock_timestamp() - t0) * 1000, res);
	END LOOP;
END $$;
