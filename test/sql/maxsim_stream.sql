-- MaxSim of stored documents in every storage form.  Out-of-line values are
-- read chunk by chunk (colpali.maxsim_streaming, on by default); the scores
-- must have the bits of the materialised computation (the setting off), of
-- the in-memory value (a cast), of the scalar oracle, and lie within the
-- error bound of a double-precision reference computed here in SQL.
SELECT maxsim('[[1]]', '[[1]]');	-- loads the library and its settings
SHOW colpali.maxsim_streaming;
SELECT setseed(0.25);
CREATE FUNCTION ms_rand(nrows int, dim int, constant bool DEFAULT false) RETURNS multivector
LANGUAGE sql VOLATILE AS $$
	SELECT array_agg(r ORDER BY i)::multivector
	FROM (SELECT i, array_agg(CASE WHEN constant THEN ((i + d) % 3 - 1) * 0.5
								  ELSE random() * 2 - 1 END::real ORDER BY d) AS r
		  FROM generate_series(1, nrows) i, generate_series(1, dim) d GROUP BY i) s
$$;
-- shapes: rows that end inside TOAST chunks (12 and 68 bytes), rows longer
-- than a chunk (1000 floats: 4,000 bytes), full 128-dim rows, short values
CREATE TABLE ms_shapes (sid int, dim int, nvec int);
INSERT INTO ms_shapes VALUES (1, 3, 700), (2, 17, 90), (3, 1000, 5), (4, 128, 40), (5, 128, 2), (6, 2, 1);
-- one table per storage setting; the same documents in each
CREATE TABLE ms_ext (sid int, id int, f multivector, h halfmultivector, b bitmultivector);
INSERT INTO ms_ext SELECT sid, g, ms_rand(nvec + g - 1, dim) FROM ms_shapes, generate_series(1, 3) g;
-- compressible documents (a repeating pattern): compressed inline when
-- small, compressed and out of line when large
INSERT INTO ms_ext SELECT 10 + sid, g, ms_rand(nvec * (1 + 40 * (g - 1)), dim, true)
FROM ms_shapes, generate_series(1, 2) g WHERE sid IN (2, 4);
UPDATE ms_ext SET h = f, b = f;
CREATE TABLE ms_main (LIKE ms_ext);
ALTER TABLE ms_main ALTER f SET STORAGE main, ALTER h SET STORAGE main, ALTER b SET STORAGE main;
INSERT INTO ms_main SELECT * FROM ms_ext;
CREATE TABLE ms_extended (LIKE ms_ext);
ALTER TABLE ms_extended ALTER f SET STORAGE extended, ALTER h SET STORAGE extended, ALTER b SET STORAGE extended;
INSERT INTO ms_extended SELECT * FROM ms_ext;
-- and a table whose values were stored before ALTER ... SET STORAGE
CREATE TABLE ms_altered AS SELECT * FROM ms_ext;
ALTER TABLE ms_altered ALTER f SET STORAGE plain;
CREATE VIEW ms_all AS
SELECT 'ext' AS tab, * FROM ms_ext UNION ALL SELECT 'main', * FROM ms_main
UNION ALL SELECT 'extended', * FROM ms_extended UNION ALL SELECT 'altered', * FROM ms_altered;

-- how the values are stored: out-of-line values per table (distinct
-- chunk_ids in its TOAST table) and compressed ones
CREATE FUNCTION ms_external(tab regclass) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
	EXECUTE format('SELECT count(DISTINCT chunk_id) FROM %s',
				   (SELECT reltoastrelid::regclass FROM pg_class WHERE oid = tab)) INTO n;
	RETURN n;
END $$;
SELECT t AS tab, ms_external(t) AS out_of_line,
	(SELECT count(*) FROM ms_all a WHERE a.tab = substr(t::text, 4) AND
		(pg_column_compression(f) IS NOT NULL OR pg_column_compression(h) IS NOT NULL
		 OR pg_column_compression(b) IS NOT NULL)) AS rows_with_compressed
FROM unnest(ARRAY['ms_ext', 'ms_main', 'ms_extended', 'ms_altered']::regclass[]) t;
SELECT tab, count(*) FILTER (WHERE pg_column_compression(f) IS NOT NULL) AS compressed_f,
	count(*) FILTER (WHERE pg_column_size(f) < 127) AS short_header_f
FROM ms_all GROUP BY tab ORDER BY tab;

-- queries of 1, 5 and 70 rows (70: two blocks of query rows)
CREATE TABLE ms_queries AS
SELECT sid, n AS qid, ms_rand((ARRAY[1, 5, 70])[n], dim) AS q FROM ms_shapes, generate_series(1, 3) n;
ALTER TABLE ms_queries ADD qh halfmultivector, ADD qb bitmultivector;
UPDATE ms_queries SET qh = q, qb = q;

-- every pair, every document, every query: streaming on and off
CREATE FUNCTION ms_scores() RETURNS TABLE (tab text, sid int, id int, qid int,
	ff float8, hf float8, hh float8, bf float8, bb float8, neg float8)
LANGUAGE sql VOLATILE AS $$
	SELECT a.tab, a.sid, a.id, q.qid, maxsim(a.f, q.q), maxsim(a.h, q.q), maxsim(a.h, q.qh),
		maxsim(a.b, q.q), maxsim(a.b, q.qb), a.f <#> q.q
	FROM ms_all a JOIN ms_queries q ON q.sid = a.sid % 10
$$;
CREATE TABLE ms_on AS SELECT * FROM ms_scores();
SET colpali.maxsim_streaming = off;
CREATE TABLE ms_off AS SELECT * FROM ms_scores();
RESET colpali.maxsim_streaming;
-- in memory: the operands cast (detoasted, then scored as before), and the
-- scalar oracle on the float pages
CREATE TABLE ms_mem AS
SELECT a.tab, a.sid, a.id, q.qid, maxsim_scalar(a.f, q.q) AS ff_oracle,
	maxsim(a.h::multivector, q.q) AS hf, maxsim(a.h::multivector, q.qh::multivector) AS hh,
	maxsim(a.b::multivector, q.q) AS bf, maxsim(a.b::real[]::bitmultivector, q.qb) AS bb
FROM ms_all a JOIN ms_queries q ON q.sid = a.sid % 10;
SELECT count(*) AS scores,
	count(*) FILTER (WHERE s.ff = o.ff AND s.hf = o.hf AND s.hh = o.hh AND s.bf = o.bf
					 AND s.bb = o.bb AND s.neg = o.neg) AS streaming_equals_materialised,
	count(*) FILTER (WHERE s.ff = m.ff_oracle) AS float_equals_scalar_oracle,
	count(*) FILTER (WHERE s.hf = m.hf AND s.hh = m.hh AND s.bf = m.bf AND s.bb = m.bb) AS compact_equal_in_memory,
	count(*) FILTER (WHERE s.neg = -s.ff) AS operator_is_negative
FROM ms_on s JOIN ms_off o USING (tab, sid, id, qid) JOIN ms_mem m USING (tab, sid, id, qid);
-- the same documents score the same in every table
SELECT count(DISTINCT (sid, id, qid, ff, hf, hh, bf, bb)) = count(DISTINCT (sid, id, qid)) AS same_in_every_table
FROM ms_on;

-- double-precision reference for the float pages of the smaller shapes:
-- sum_j max_i sum_k d q, and the error bound's sum_j max_i sum_k |d q|
CREATE TABLE ms_de AS
SELECT sid, id, (o - 1) / dims(f) AS i, (o - 1) % dims(f) AS k, x::float8 AS x, dims(f) AS dim
FROM ms_ext, unnest(f::real[]) WITH ORDINALITY u(x, o) WHERE sid IN (1, 3, 6);
CREATE TABLE ms_qe AS
SELECT sid, qid, (o - 1) / dims(q) AS j, (o - 1) % dims(q) AS k, x::float8 AS x
FROM ms_queries, unnest(q::real[]) WITH ORDINALITY u(x, o) WHERE qid <= 2 AND sid IN (1, 3, 6);
ANALYZE ms_de, ms_qe;
CREATE TABLE ms_ref AS
SELECT sid, id, qid, sum(best) AS maxsim, sum(best_abs) AS absmax, max(dim) AS dim
FROM (SELECT sid, id, qid, j, max(dot) AS best, max(absdot) AS best_abs, max(dim) AS dim
	  FROM (SELECT d.sid, d.id, q.qid, q.j, d.i, max(d.dim) AS dim,
				   sum(d.x * q.x) AS dot, sum(abs(d.x * q.x)) AS absdot
			FROM ms_de d JOIN ms_qe q ON q.sid = d.sid AND q.k = d.k
			GROUP BY 1, 2, 3, 4, 5) dots
	  GROUP BY 1, 2, 3, 4) b
GROUP BY 1, 2, 3;
SELECT count(*) AS references,
	count(*) FILTER (WHERE abs(s.ff - r.maxsim) <= r.absmax * (r.dim * 2 ^ -24) / (1 - r.dim * 2 ^ -24) + 1e-12) AS within_bound
FROM ms_ref r JOIN ms_on s USING (sid, id, qid);

-- ORDER BY <#> LIMIT: the same rows and distances streaming or not
CREATE FUNCTION ms_top(tab regclass, sid int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r text;
BEGIN
	EXECUTE format('SELECT string_agg(id || '':'' || dist, '','') FROM (SELECT id, f <#> q AS dist FROM %s t,
		(SELECT q FROM ms_queries WHERE sid = %s AND qid = 2) q WHERE t.sid %% 10 = %s ORDER BY 2, 1 LIMIT 3) s',
		tab, sid, sid) INTO r;
	RETURN r;
END $$;
CREATE TABLE ms_top_on AS SELECT t, s, ms_top(t, s) AS top FROM unnest(ARRAY['ms_ext', 'ms_main']::regclass[]) t, generate_series(1, 6) s;
SET colpali.maxsim_streaming = off;
SELECT count(*) AS orderings, count(*) FILTER (WHERE o.top = ms_top(o.t, o.s)) AS same_order FROM ms_top_on o;
RESET colpali.maxsim_streaming;

-- the mvivf exact rerank reads out-of-line pages the same way
CREATE TABLE ms_idx (id int, f multivector);
INSERT INTO ms_idx SELECT i, l2_normalize(ms_rand(20, 64)) FROM generate_series(1, 40) i;
SELECT ms_external('ms_idx') AS out_of_line;
CREATE INDEX ms_idx_f ON ms_idx USING mvivf (f) WITH (lists = 4);
SELECT setseed(0.75);
CREATE TABLE ms_iq AS SELECT l2_normalize(ms_rand(4, 64)) AS q;
-- EXPLAIN (COSTS OFF) of q as the same text on PostgreSQL 15 to 18: 17 names
-- an InitPlan's output "(InitPlan N).col1" where 15-16 say "$K" (given by
-- "InitPlan N (returns $K)"), and 18 marks disabled nodes
CREATE FUNCTION ms_plan(q text) RETURNS SETOF text LANGUAGE plpgsql AS $f$
DECLARE
	lines text[];
	l text;
	m text[];
BEGIN
	FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		lines := lines || l;
	END LOOP;
	FOR m IN SELECT regexp_matches(x, 'InitPlan (\d+) \(returns \$(\d+)\)') FROM unnest(lines) x LOOP
		lines := array(SELECT replace(regexp_replace(x, 'InitPlan (\d+) \(returns \$\d+\)', 'InitPlan \1'),
									  '$' || m[2], '(InitPlan ' || m[1] || ').col1') FROM unnest(lines) x);
	END LOOP;
	RETURN QUERY SELECT x FROM unnest(lines) x WHERE x !~ '^\s*Disabled: true$';
END $f$;
SET enable_seqscan = off;
CREATE TABLE ms_by_index AS SELECT id, f <#> (SELECT q FROM ms_iq) AS dist FROM ms_idx ORDER BY f <#> (SELECT q FROM ms_iq) LIMIT 10;
SELECT * FROM ms_plan('SELECT id FROM ms_idx ORDER BY f <#> (SELECT q FROM ms_iq) LIMIT 10');
RESET enable_seqscan;
SET enable_indexscan = off;
SET colpali.maxsim_streaming = off;
SELECT count(*) AS rows, count(*) FILTER (WHERE s.dist = i.dist) AS same_distance
FROM (SELECT id, f <#> (SELECT q FROM ms_iq) AS dist FROM ms_idx) s JOIN ms_by_index i USING (id);
RESET colpali.maxsim_streaming;
RESET enable_indexscan;

-- malformed out-of-line values are an ERROR, never a read past the data:
-- the bytes of a header and data stored out of line as bytea, the column
-- then relabelled multivector in the catalog (little-endian header: dim,
-- format, flags, rows, reserved)
CREATE TABLE ms_raw (name text, v bytea);
ALTER TABLE ms_raw ALTER v SET STORAGE external;
INSERT INTO ms_raw VALUES
	('valid', decode('1000' || '00' || '00' || '28000000' || '00000000' || repeat('0000803f', 640), 'hex')),
	('too_many_rows', decode('1000' || '00' || '00' || '29000000' || '00000000' || repeat('0000803f', 640), 'hex')),
	('format_7', decode('1000' || '07' || '00' || '28000000' || '00000000' || repeat('0000803f', 640), 'hex')),
	('flags_1', decode('1000' || '00' || '01' || '28000000' || '00000000' || repeat('0000803f', 640), 'hex')),
	('dim_0', decode('0000' || '00' || '00' || '28000000' || '00000000' || repeat('0000803f', 640), 'hex')),
	('header_cut', decode('100000', 'hex'));
SELECT ms_external('ms_raw') AS out_of_line;
UPDATE pg_attribute SET atttypid = 'multivector'::regtype
WHERE attrelid = 'ms_raw'::regclass AND attname = 'v';
-- valid: 40 rows of sixteen 1.0 against a query row of sixteen 0.5
SELECT maxsim(v, array_fill(0.5::real, ARRAY[1, 16])::multivector) AS score,
	v <#> array_fill(0.5::real, ARRAY[2, 16])::multivector AS op
FROM ms_raw WHERE name = 'valid';
SELECT maxsim(v, array_fill(0.5::real, ARRAY[1, 16])::multivector) FROM ms_raw WHERE name = 'too_many_rows';
SELECT maxsim(v, array_fill(0.5::real, ARRAY[1, 16])::multivector) FROM ms_raw WHERE name = 'format_7';
SELECT maxsim(v, array_fill(0.5::real, ARRAY[1, 16])::multivector) FROM ms_raw WHERE name = 'flags_1';
SELECT maxsim(v, array_fill(0.5::real, ARRAY[1, 16])::multivector) FROM ms_raw WHERE name = 'dim_0';
SELECT maxsim(v, array_fill(0.5::real, ARRAY[1, 16])::multivector) FROM ms_raw WHERE name = 'header_cut';
SELECT maxsim(v, array_fill(0.5::real, ARRAY[1, 8])::multivector) FROM ms_raw WHERE name = 'valid';
SET colpali.maxsim_streaming = off;
SELECT maxsim(v, array_fill(0.5::real, ARRAY[1, 16])::multivector) AS score FROM ms_raw WHERE name = 'valid';
SELECT maxsim(v, array_fill(0.5::real, ARRAY[1, 16])::multivector) FROM ms_raw WHERE name = 'too_many_rows';
SELECT maxsim(v, array_fill(0.5::real, ARRAY[1, 8])::multivector) FROM ms_raw WHERE name = 'valid';
RESET colpali.maxsim_streaming;

DROP VIEW ms_all;
DROP TABLE ms_ext, ms_main, ms_extended, ms_altered, ms_shapes, ms_queries, ms_on, ms_off, ms_mem,
	ms_de, ms_qe, ms_ref, ms_top_on, ms_idx, ms_iq, ms_by_index, ms_raw;
DROP FUNCTION ms_rand, ms_external, ms_scores, ms_top, ms_plan;
