-- pgvector's token-HNSW pattern over the docs and queries of measure.sql
-- (bench/index/pgvector.sh): one row per token, and per query the pages of
-- the k' nearest tokens of each query row, reranked by exact MaxSim.

-- tokens(doc_id, embedding) from docs, and qrows(qid, i, v) from queries;
-- each value is turned into an array once (the subquery kept apart by
-- OFFSET 0), then sliced row by row
CREATE OR REPLACE FUNCTION pgv_load_tokens() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	DROP TABLE IF EXISTS tokens, qrows;
	CREATE TABLE tokens (doc_id int, embedding vector(128));
	INSERT INTO tokens
	SELECT d.id, (SELECT array_agg(x) FROM unnest(s.a[i:i][:]) x)::vector
	FROM docs d, LATERAL (SELECT d.emb::real[] AS a OFFSET 0) s,
		LATERAL generate_series(1, array_length(s.a, 1)) i;
	CREATE TABLE qrows (qid int, i int, v vector(128));
	INSERT INTO qrows
	SELECT q.qid, i, (SELECT array_agg(x) FROM unnest(s.a[i:i][:]) x)::vector
	FROM queries q, LATERAL (SELECT q.q::real[] AS a OFFSET 0) s,
		LATERAL generate_series(1, array_length(s.a, 1)) i;
	CREATE INDEX ON qrows (qid);
	ANALYZE tokens;
	ANALYZE qrows;
END $$;

-- recall@10 (as mvb_run counts it), p50 latency and mean candidate pages of
-- the pattern with k' tokens per query row, at the session's hnsw.ef_search
CREATE OR REPLACE FUNCTION pgv_run(kprime int, OUT recall float8, OUT p50_ms float8, OUT docs float8)
LANGUAGE plpgsql AS $$
DECLARE r record; t0 timestamptz; cand int[]; ids int[]; hits int := 0; n int := 0;
	lat float8[] := '{}'; ndocs float8 := 0;
BEGIN
	SET LOCAL jit = off;
	FOR r IN SELECT t.qid, q.q, t.ids, t.kth FROM truth t JOIN queries q USING (qid) ORDER BY qid LOOP
		t0 := clock_timestamp();
		-- stage 1: the HNSW index once per query row
		cand := array(SELECT DISTINCT n.doc_id FROM qrows qr,
						LATERAL (SELECT doc_id FROM tokens ORDER BY embedding <#> qr.v LIMIT kprime) n
					  WHERE qr.qid = r.qid);
		-- stage 2: exact MaxSim of those pages (docs has no other index)
		ids := array(SELECT id FROM docs WHERE id = ANY (cand) ORDER BY emb <#> r.q LIMIT 10);
		lat := lat || extract(epoch FROM clock_timestamp() - t0) * 1000;
		ndocs := ndocs + coalesce(array_length(cand, 1), 0);
		hits := hits + (SELECT count(*) FROM unnest(ids) i WHERE i = ANY (r.ids)) +
			(SELECT count(*) FROM docs d WHERE d.id = ANY (ids) AND NOT d.id = ANY (r.ids)
				AND r.kth IS NOT NULL AND d.emb <#> r.q <= r.kth);
		n := n + 10;
	END LOOP;
	recall := hits::float8 / n;
	docs := ndocs / greatest(n / 10, 1);
	SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) INTO p50_ms FROM unnest(lat) x;
END $$;
