-- halfmultivector and bitmultivector: I/O, casts, errors, MaxSim of every
-- pair against a double-precision reference computed in SQL

-- half: text round trip writes each element's exact value
SELECT '[[1,-2.5,0.1],[65504,-0,6e-8]]'::halfmultivector;
SELECT ' [ [ 1 , 2 ] ] '::halfmultivector, '[[1e-8, -1e-8, 1e-50]]'::halfmultivector AS underflow_to_zero;
SELECT '[[0.1,65504]]'::halfmultivector::text::halfmultivector::text = '[[0.1,65504]]'::halfmultivector::text AS text_roundtrip;
-- round to nearest, ties to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10
SELECT '[[1.00048828125, 1.00146484375, 1.0004882812500001, 65519]]'::halfmultivector;
-- (the third is read as a double and rounded once: through float32 it
-- would first become the midpoint, then round down to 1)
-- errors: overflow (never infinity), NaN, infinity, shapes, typmod
SELECT '[[65520]]'::halfmultivector;
SELECT '[[1,-1e5]]'::halfmultivector;
SELECT '[[NaN]]'::halfmultivector;
SELECT '[[1,-Infinity]]'::halfmultivector;
SELECT '[[1,2],[3]]'::halfmultivector;
SELECT '[]'::halfmultivector;
SELECT '[[1,2]]'::halfmultivector(3);
CREATE TEMP TABLE th (v halfmultivector(2));
INSERT INTO th VALUES ('[[1,2],[3,4]]');
INSERT INTO th VALUES ('[[1,2,3]]');
SELECT v, dims(v), num_vectors(v), pg_column_size(v) FROM th;
-- binary form: 12-byte header with format 1, then big-endian binary16
SELECT halfmultivector_send('[[1,-2]]');

-- binary: one run of 0 and 1 per row, character k = dimension k
SELECT '[101,010]'::bitmultivector, ' [ 1011 , 0000 ] '::bitmultivector;
SELECT '[101010101]'::bitmultivector, dims('[101010101]'::bitmultivector),
	num_vectors('[101010101,000000000]'::bitmultivector);
SELECT bitmultivector_send('[101010101]'), bitmultivector_send('[10,01]');
SELECT '[]'::bitmultivector;
SELECT '[102]'::bitmultivector;
SELECT '[[1,0]]'::bitmultivector;
SELECT '[10,1]'::bitmultivector;
SELECT '[1,10]'::bitmultivector;
SELECT '[1 0]'::bitmultivector;
SELECT '[1]x'::bitmultivector;
SELECT '[101]'::bitmultivector(4);
SELECT repeat('1', 4097)::text AS long \gset
SELECT ('[' || :'long' || ']')::bitmultivector;

-- casts between the formats
SELECT '[[1,-2.5,0.1],[0,-0,-3]]'::multivector::halfmultivector;
SELECT '[[1,-2.5,0.1],[0,-0,-3]]'::multivector::halfmultivector::multivector;
SELECT '[[1,-2.5,0.1],[0,-0,-3]]'::multivector::bitmultivector AS sign_zero_is_1;
SELECT '[[1,-2.5,0.1],[0,-0,-3]]'::halfmultivector::bitmultivector AS sign_zero_is_1;
SELECT '[101,010]'::bitmultivector::multivector, '[101,010]'::bitmultivector::halfmultivector;
SELECT '[101,010]'::bitmultivector::real[], '[[0.1,2]]'::halfmultivector::real[];
SELECT ARRAY[[1, -0.5], [0, 3]]::real[]::halfmultivector, ARRAY[[1, -0.5], [0, -3]]::real[]::bitmultivector;
-- float32 -> half: every finite half survives float32 -> half -> float32
SELECT count(*) AS all_halves_roundtrip
FROM (SELECT ('[[' || x || ']]')::multivector AS m
	  FROM (SELECT ((-1) ^ s) * (2 ^ e) * (1 + f / 1024.0) AS x
			FROM generate_series(0, 1) s, generate_series(-14, 15) e, generate_series(0, 1023) f) v) w
WHERE m::halfmultivector::multivector::text = m::text;
SELECT '[[70000]]'::multivector::halfmultivector;
SELECT '[[1,2],[3,-65520]]'::multivector::halfmultivector;
SELECT ARRAY[['NaN'::real]]::halfmultivector;
SELECT ARRAY[[1, '-Infinity'::real]]::bitmultivector;
SELECT '[[1,2]]'::multivector::halfmultivector(3);
SELECT '[11]'::bitmultivector::multivector(3);
-- assignment casts: a half or binary column takes float32 values
CREATE TEMP TABLE tb (b bitmultivector(3), h halfmultivector(3));
INSERT INTO tb SELECT m, m FROM (SELECT '[[1,-1,0.5],[-0.2,0.3,-0.4]]'::multivector AS m) s;
SELECT b, h FROM tb;

-- storage: half out of line like multivector; binary inline while it fits
SELECT typname, typstorage, typalign FROM pg_type
WHERE typname IN ('multivector', 'halfmultivector', 'bitmultivector') ORDER BY 1;

-- operators: one per (document, query) pair; an untyped query literal takes
-- the document's type
SELECT oprleft::regtype, oprright::regtype, oprcode FROM pg_operator
WHERE oprname = '<#>' AND oprleft IN ('multivector'::regtype, 'halfmultivector'::regtype, 'bitmultivector'::regtype)
ORDER BY 1::text, 2::text;
SELECT '[101,010]'::bitmultivector <#> '[111]' AS bit_bit, '[101,010]'::bitmultivector <#> '[[1,1,1]]'::multivector AS bit_float;
SELECT maxsim('[[1,2]]'::halfmultivector, '[[1,2,3]]'::multivector);
SELECT maxsim('[101]'::bitmultivector, '[10]'::bitmultivector);
SELECT maxsim(NULL::halfmultivector, '[[1]]'::multivector), NULL::bitmultivector <#> '[1]';

-- MaxSim of every pair against a double-precision reference from the stored
-- values (half: exact values; binary: +-1), over dimensions that reach
-- every kernel path (hamming: AVX-512 at 121..128, 64-bit words at
-- multiples of 64, scalar otherwise)
SELECT setseed(0.5);
CREATE TEMP TABLE shapes AS
SELECT s AS sid, d AS dim FROM (VALUES (1, 1), (2, 7), (3, 17), (4, 64), (5, 65), (6, 120), (7, 128)) v(s, d);
CREATE TEMP TABLE docs AS
SELECT sh.sid, g AS id,
	(SELECT array_agg(ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, sh.dim) k WHERE g > 0 AND r > 0))
	 FROM generate_series(1, 1 + ((g - 1) * 5) % 11) r)::multivector AS f
FROM shapes sh, generate_series(1, 8) g;
CREATE TEMP TABLE queries AS
SELECT sh.sid, n AS qid,
	(SELECT array_agg(ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, sh.dim) k WHERE n > 0 AND r > 0))
	 FROM generate_series(1, (ARRAY[1, 3, 9, 20])[n]) r)::multivector AS q
FROM shapes sh, generate_series(1, 4) n;
ALTER TABLE docs ADD h halfmultivector, ADD b bitmultivector;
UPDATE docs SET h = f, b = f;
ALTER TABLE queries ADD qh halfmultivector, ADD qb bitmultivector;
UPDATE queries SET qh = q, qb = q;
-- one query equal to a document's signs: the binary maximum D is reached
UPDATE queries q SET qb = d.b FROM docs d WHERE d.sid = q.sid AND d.id = 3 AND q.qid = 2;

-- elements (i or j: row, k: column) of the stored documents and queries
CREATE TEMP TABLE de AS
SELECT d.sid, d.id, fmt, (u.o - 1) / dims(d.f) AS i, (u.o - 1) % dims(d.f) AS k, u.x::float8 AS x
FROM docs d, LATERAL (SELECT 'h' AS fmt, x, o FROM unnest(d.h::real[]) WITH ORDINALITY AS u(x, o)
					  UNION ALL
					  SELECT 'b', x, o FROM unnest(d.b::real[]) WITH ORDINALITY AS u(x, o)) u;
CREATE TEMP TABLE qe AS
SELECT q.sid, q.qid, fmt, (u.o - 1) / dims(q.q) AS j, (u.o - 1) % dims(q.q) AS k, u.x::float8 AS x
FROM queries q, LATERAL (SELECT 'f' AS fmt, x, o FROM unnest(q.q::real[]) WITH ORDINALITY AS u(x, o)
						 UNION ALL
						 SELECT 'h', x, o FROM unnest(q.qh::real[]) WITH ORDINALITY AS u(x, o)
						 UNION ALL
						 SELECT 'b', x, o FROM unnest(q.qb::real[]) WITH ORDINALITY AS u(x, o)) u;
-- the binary elements are exactly +-1
SELECT count(*) FILTER (WHERE abs(x) <> 1) AS not_pm1 FROM de WHERE fmt = 'b';
-- reference per (pair, doc, query): sum_j max_i sum_k d q, and the float32
-- error bound's sum_j max_i sum_k |d q|
CREATE TEMP TABLE ref AS
SELECT pair, sid, id, qid, sum(best) AS maxsim, sum(best_abs) AS absmax
FROM (SELECT pair, sid, id, qid, j, max(dot) AS best, max(absdot) AS best_abs
	  FROM (SELECT de.fmt || qe.fmt AS pair, de.sid, de.id, qe.qid, qe.j, de.i,
				   sum(de.x * qe.x) AS dot, sum(abs(de.x * qe.x)) AS absdot
			FROM de JOIN qe ON de.sid = qe.sid AND de.k = qe.k
			WHERE (de.fmt, qe.fmt) IN (('h', 'f'), ('h', 'h'), ('b', 'f'), ('b', 'b'))
			GROUP BY 1, 2, 3, 4, 5, 6) dots
	  GROUP BY 1, 2, 3, 4, 5) best
GROUP BY 1, 2, 3, 4;
CREATE TEMP TABLE got AS
SELECT r.pair, r.sid, r.id, r.qid, r.maxsim AS ref, r.absmax, s.dim,
	CASE r.pair WHEN 'hf' THEN maxsim(d.h, q.q) WHEN 'hh' THEN maxsim(d.h, q.qh)
		WHEN 'bf' THEN maxsim(d.b, q.q) ELSE maxsim(d.b, q.qb) END AS got,
	CASE r.pair WHEN 'hf' THEN d.h <#> q.q WHEN 'hh' THEN d.h <#> q.qh
		WHEN 'bf' THEN d.b <#> q.q ELSE d.b <#> q.qb END AS op,
	-- the same pair through the float32 multivector (the definition)
	CASE r.pair WHEN 'hf' THEN maxsim(d.h::multivector, q.q) WHEN 'hh' THEN maxsim(d.h::multivector, q.qh::multivector)
		WHEN 'bf' THEN maxsim(d.b::multivector, q.q) ELSE maxsim(d.b::multivector, q.qb::multivector) END AS via_float
FROM ref r JOIN docs d USING (sid, id) JOIN queries q USING (sid, qid) JOIN shapes s USING (sid);
SELECT pair, count(*) AS pairs,
	count(*) FILTER (WHERE abs(got - ref) <= absmax * (dim * 2 ^ -24) / (1 - dim * 2 ^ -24) + 1e-12) AS within_bound,
	count(*) FILTER (WHERE got = ref) AS exact,
	count(*) FILTER (WHERE got = via_float) AS same_as_float_kernel,
	count(*) FILTER (WHERE op = -got) AS operator_is_negative
FROM got GROUP BY pair ORDER BY pair;
-- binary x binary is an integer: D - 2 hamming per query row
SELECT count(*) FILTER (WHERE got <> round(got)) AS non_integer,
	count(*) FILTER (WHERE got = dim * (SELECT num_vectors(qb) FROM queries q WHERE q.sid = g.sid AND q.qid = g.qid)) AS perfect
FROM got g WHERE pair = 'bb' AND qid = 2 OR pair = 'bb' AND got <> round(got);

-- ORDER BY <#> LIMIT ranks as the reference does (ties broken by id)
SELECT pair, count(*) AS queries,
	count(*) FILTER (WHERE by_operator = by_reference) AS same_top3
FROM (SELECT g.pair, g.sid, g.qid,
		(SELECT array_agg(id ORDER BY rk) FROM (SELECT id, row_number() OVER (ORDER BY op, id) rk FROM got x
			WHERE x.pair = g.pair AND x.sid = g.sid AND x.qid = g.qid) t WHERE rk <= 3) AS by_operator,
		(SELECT array_agg(id ORDER BY rk) FROM (SELECT id, row_number() OVER (ORDER BY ref DESC, id) rk FROM got x
			WHERE x.pair = g.pair AND x.sid = g.sid AND x.qid = g.qid) t WHERE rk <= 3) AS by_reference
	  FROM (SELECT DISTINCT pair, sid, qid FROM got) g) c
GROUP BY pair ORDER BY pair;
-- and in a scan with the operator in ORDER BY
SELECT array_agg(id ORDER BY dist, id) = (SELECT array_agg(id ORDER BY ref DESC, id) FROM got WHERE pair = 'bf' AND sid = 7 AND qid = 3) AS same_order
FROM (SELECT id, b <#> (SELECT q FROM queries WHERE sid = 7 AND qid = 3) AS dist FROM docs WHERE sid = 7) s;

-- a query stored in a table reaches each call as the same TOAST pointer; it
-- is fetched once per call site and the scores are those of the literal
CREATE TEMP TABLE stored_q (qid int, q multivector);
ALTER TABLE stored_q ALTER q SET STORAGE external;
INSERT INTO stored_q SELECT qid, q FROM queries WHERE sid = 7 AND qid IN (3, 4);
SELECT pg_relation_size(reltoastrelid) > 8000 AS stored_out_of_line FROM pg_class WHERE relname = 'stored_q';
SELECT s.qid, count(*) AS docs,
	count(*) FILTER (WHERE d.f <#> (SELECT q FROM stored_q x WHERE x.qid = s.qid) = d.f <#> q.q) AS float_same,
	count(*) FILTER (WHERE maxsim(d.h, (SELECT q FROM stored_q x WHERE x.qid = s.qid)) = maxsim(d.h, q.q)) AS half_same,
	count(*) FILTER (WHERE d.b <#> (SELECT q FROM stored_q x WHERE x.qid = s.qid) = d.b <#> q.q) AS bit_same
FROM stored_q s JOIN queries q ON q.sid = 7 AND q.qid = s.qid JOIN docs d ON d.sid = 7
GROUP BY s.qid ORDER BY s.qid;
-- two stored queries alternating through one call site
SELECT count(*) FILTER (WHERE d.f <#> s.q = d.f <#> q.q) AS same, count(*)
FROM docs d JOIN stored_q s ON true JOIN queries q ON q.sid = 7 AND q.qid = s.qid
WHERE d.sid = 7;

-- a cast of the query inside ORDER BY runs once per row where the query is
-- not a constant at planning (a generic plan, a query from another table);
-- each call site keeps its last result by input bytes (src/cast_memo.c):
-- every row still gets its own query's cast, against the cast through real[]
SELECT count(*) AS casts,
	count(*) FILTER (WHERE (q.q::bitmultivector)::text = ((q.q::real[])::bitmultivector)::text) AS bit_same,
	count(*) FILTER (WHERE (q.q::halfmultivector)::text = ((q.q::real[])::halfmultivector)::text) AS half_same
FROM queries q, generate_series(1, 3) g;
CREATE FUNCTION cast_memo_check() RETURNS int LANGUAGE plpgsql AS $$
DECLARE r record; n int := 0; by_memo int[]; by_array int[];
BEGIN
	FOR r IN SELECT q FROM queries WHERE sid = 7 ORDER BY qid LOOP
		FOR i IN 1 .. 3 LOOP
			by_memo := array(SELECT id FROM docs d WHERE sid = 7 ORDER BY d.b <#> r.q::bitmultivector, id);
			by_array := array(SELECT id FROM docs d WHERE sid = 7 ORDER BY d.b <#> (r.q::real[])::bitmultivector, id);
			IF by_memo = by_array THEN
				n := n + 1;
			END IF;
		END LOOP;
	END LOOP;
	RETURN n;
END $$;
SET plan_cache_mode = force_generic_plan;
SELECT cast_memo_check() = 3 * (SELECT count(*) FROM queries WHERE sid = 7) AS generic_plans_same;
RESET plan_cache_mode;
DROP FUNCTION cast_memo_check();
