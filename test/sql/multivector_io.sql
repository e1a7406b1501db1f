-- multivector text input and output, typmod, casts, NULLs

-- every accepted input form
SELECT '[[1,2,3]]'::multivector;
SELECT '[[1,2],[3,4]]'::multivector;
SELECT '  [ [ 1 , 2 ] , [ 3 ,4 ] ]  '::multivector;
SELECT E'[\n[1,\t2],\r\n[3, 4]\n]'::multivector;
SELECT '[[1e3,-2.5E-2,+7,.5,5.,1E+2]]'::multivector;
SELECT '[[-0,0,-0.0]]'::multivector;
SELECT '[[3.4028235e38,-3.4028235e38,1.1754944e-38,1e-45,-1e-45]]'::multivector;
SELECT '[[0.1,0.2,0.3,1.0000001,16777217]]'::multivector;
-- hexadecimal floats, as real input accepts them
SELECT '[[0x1p-2,-0x10]]'::multivector;

-- errors, with their SQLSTATE
CREATE FUNCTION mv_try(t text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	detail text;
BEGIN
	PERFORM t::multivector;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ' ' || CASE WHEN detail <> '' THEN detail ELSE SQLERRM END;
END $$;

SELECT t AS input, mv_try(t) AS result FROM (VALUES
	(''), ('   '), ('x'), ('['), ('[]'), ('[ ]'), ('[[]]'), ('[[1],[]]'),
	('[1,2]'), ('[[1,2]'), ('[[1,2]]]'), ('[[1,2]] x'), ('[[1,2]],'), ('[[1,2],]'),
	('[[1,,2]]'), ('[[1 2]]'), ('[[1,2,]]'), ('[[,1]]'), ('[[1]][[2]]'), ('[[1],2]'),
	('[[1,2],[3]]'), ('[[1],[2,3]]'), ('[[1,2],[3,4,5]]'), ('[[1x]]'), ('[[1.2.3]]'), ('[[[1]]]'),
	('[[NaN]]'), ('[[nan]]'), ('[[1,-NaN]]'), ('[[Infinity]]'), ('[[-inf]]'), ('[[1,INF]]'),
	('[[1e39]]'), ('[[-3.5e38]]'), ('[[1e-50]]'), ('[[-1e-46]]'),
	('[[0],[0]]')
) AS v(t);

-- full messages for a few
SELECT '[[1,2],[3]]'::multivector;
SELECT '[[1,2]] junk'::multivector;
SELECT '[[]]'::multivector;
SELECT '[[NaN]]'::multivector;
SELECT '[[1e39]]'::multivector;

-- limits: D <= 4096, N <= 16384
SELECT dims(('[[' || repeat('0,', 4095) || '1]]')::multivector);
SELECT mv_try('[[' || repeat('0,', 4096) || '1]]');
SELECT num_vectors(('[' || repeat('[1],', 16383) || '[2]]')::multivector);
SELECT mv_try('[' || repeat('[1],', 16384) || '[2]]');

-- output is the shortest text that reads back to the same bits
SELECT '[[1.00000001, 0.30000001192092896, 3.40282347e+38, 1.401298464324817e-45]]'::multivector;

-- text round trip is bit-exact over random float32 bit patterns, including
-- denormals, the extremes and -0 (value = +-m * 2^e, m < 2^24, exact in float8)
SELECT setseed(0.5);
CREATE TEMP TABLE rt AS
SELECT r AS id,
	(SELECT array_agg(ARRAY[x.a, x.b, x.c, x.d])
	   FROM (SELECT
			(CASE WHEN random() < 0.5 THEN -1 ELSE 1 END
			 * floor(random() * 16777216) * power(2::float8, floor(random() * 254)::int - 149))::real AS a,
			(CASE WHEN random() < 0.5 THEN -1 ELSE 1 END
			 * floor(random() * 8388608) * power(2::float8, -149))::real AS b,
			(CASE WHEN random() < 0.5 THEN -1 ELSE 1 END * random())::real AS c,
			(CASE WHEN random() < 0.5 THEN -1 ELSE 1 END
			 * floor(random() * 16777216) * power(2::float8, floor(random() * 60)::int - 30))::real AS d
			 FROM generate_series(1, 50) g WHERE r > 0) x)::multivector AS v
FROM generate_series(1, 40) r;
INSERT INTO rt VALUES
	(41, '[[3.4028235e38,-3.4028235e38,-0,0],[1e-45,-1e-45,1.1754942e-38,-1.1754944e-38]]');
SELECT count(*) AS rows,
	count(*) FILTER (WHERE multivector_send(v) = multivector_send(v::text::multivector)) AS bit_exact,
	count(*) FILTER (WHERE v::text = v::text::multivector::text) AS text_stable
FROM rt;
-- the random data did hit denormals and negative values
SELECT count(*) FILTER (WHERE abs(x) < 1.1754944e-38 AND x <> 0) > 0 AS has_denormals,
	count(*) FILTER (WHERE x < 0) > 0 AS has_negatives
FROM rt, unnest(v::real[]) x;
-- -0 survives (its sign bit is visible in the binary form)
SELECT multivector_send('[[-0]]'), multivector_send('[[-0]]'::multivector::text::multivector);

-- binary form: int16 dim, int8 format, int8 flags, int32 nvec, int32 reserved, float4s
SELECT multivector_send('[[1,2],[-0.5,3.4028235e38]]');

-- typmod
CREATE TEMP TABLE tm (id int, v multivector(3));
SELECT format_type(atttypid, atttypmod), attstorage FROM pg_attribute
	WHERE attrelid = 'tm'::regclass AND attname = 'v';
INSERT INTO tm VALUES (1, '[[1,2,3],[4,5,6]]');
INSERT INTO tm VALUES (2, '[[1,2]]');
INSERT INTO tm SELECT 3, '[[1,2,3,4]]'::multivector;
INSERT INTO tm SELECT 4, v FROM (SELECT '[[7,8]]'::multivector AS v) s;
UPDATE tm SET v = '[[1]]' WHERE id = 1;
SELECT '[[1,2,3]]'::multivector(3), '[[1,2]]'::multivector(3);
SELECT '[[1,2]]'::multivector(0);
SELECT '[[1,2]]'::multivector(4097);
SELECT '[[1,2]]'::multivector(2, 3);
SELECT '[[1,2]]'::multivector(4096);
SELECT * FROM tm;

-- casts
SELECT ARRAY[[1,2],[3,4]]::real[]::multivector;
SELECT ARRAY[[1.5,-2],[3,4e-3]]::float8[]::multivector;
SELECT '{{1,2,3}}'::real[]::multivector(3);
SELECT '{{1,2,3}}'::real[]::multivector(2);
SELECT '[[1,2],[3,-0]]'::multivector::real[];
SELECT pg_typeof('[[1]]'::multivector::real[]);
SELECT array_dims('[[1,2,3],[4,5,6]]'::multivector::real[]);
INSERT INTO tm VALUES (5, ARRAY[[9,9,9]]::real[]);
INSERT INTO tm VALUES (6, ARRAY[[9,9,9],[8,8,8]]::float8[]);
INSERT INTO tm VALUES (7, ARRAY[[9,9]]::real[]);
SELECT id, v FROM tm ORDER BY id;
-- cast errors
SELECT ARRAY[1,2]::real[]::multivector;
SELECT '{}'::real[]::multivector;
SELECT ARRAY[[[1]]]::real[]::multivector;
SELECT ARRAY[[1,NULL]]::real[]::multivector;
SELECT ARRAY[['NaN']]::real[]::multivector;
SELECT ARRAY[['Infinity']]::float8[]::multivector;
SELECT ARRAY[[1e39]]::float8[]::multivector;
SELECT ARRAY[[1e-50]]::float8[]::multivector;
SELECT ARRAY[[1e-45]]::float8[]::multivector;
SELECT ARRAY[[1,2]]::int[]::multivector;
-- real[] round trip through the cast is exact
SELECT count(*) FILTER (WHERE multivector_send(v) = multivector_send(v::real[]::multivector)) = count(*)
FROM rt;

-- functions
SELECT dims('[[1,2,3],[4,5,6]]'), num_vectors('[[1,2,3],[4,5,6]]');
SELECT l2_normalize('[[3,4],[0,0],[0,-2],[1e-40,0]]');
SELECT l2_normalize('[[3.4028235e38,3.4028235e38]]');
-- normalised rows have unit norm
SELECT bool_and(abs(n - 1) < 1e-6) FROM (
	SELECT sqrt(sum(x::float8 * x::float8)) AS n
	FROM (SELECT l2_normalize(v) AS v FROM rt WHERE id <= 5) s,
		unnest(s.v::real[]) WITH ORDINALITY AS u(x, o)
	GROUP BY s.v::text, (o - 1) / 4) t;

-- NULLs: every function is strict
SELECT NULL::multivector IS NULL, dims(NULL), num_vectors(NULL), l2_normalize(NULL) IS NULL,
	(NULL::real[])::multivector IS NULL, (NULL::multivector)::real[] IS NULL;
INSERT INTO tm VALUES (8, NULL);
SELECT id, v IS NULL FROM tm WHERE id = 8;

-- random garbage and random one- or two-character mutations of valid text
-- never crash: every input either parses (and then round-trips) or fails
-- with one of the documented SQLSTATEs
SELECT setseed(0.75);
CREATE TEMP TABLE fuzz AS
SELECT g, (SELECT string_agg(substr('[[],,].0123456789e-+ nNaIf', (random() * 26)::int + 1, 1), '')
		   FROM generate_series(1, 1 + (random() * 40)::int) WHERE g > 0) AS t
FROM generate_series(1, 1000) g;
CREATE TEMP TABLE mutated AS
SELECT g, overlay(b.t PLACING substr('[],.0123456789e-+ nx', (random() * 20)::int + 1, (random() * 2)::int)
		FROM 1 + (random() * (length(b.t) - 1))::int FOR (random() * 2)::int) AS t
FROM generate_series(1, 2000) g,
	LATERAL (SELECT (ARRAY['[[1.5,-2e3],[0,4]]', '[[ 1 , 2 ], [ 3e-40 , -0 ] ]',
					'[[3.4028235e38],[1e-45]]', '[[0.25,1,2,3,4,5,6,7,8,9]]'])[1 + g % 4] AS t) b;
SELECT count(*) AS inputs,
	bool_and(left(mv_try(t), 5) IN ('ok', '22P02', '22023', '22003', '54000')) AS clean_errors,
	count(*) FILTER (WHERE mv_try(t) = 'ok') > 100 AS many_parsed,
	count(*) FILTER (WHERE mv_try(t) <> 'ok') > 100 AS many_rejected,
	bool_and(mv_try(t) <> 'ok' OR t::multivector::text::multivector::text = t::multivector::text) AS round_trip
FROM (SELECT t FROM fuzz UNION ALL SELECT t FROM mutated) s;
