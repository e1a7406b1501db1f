-- size limits: D <= 4096, N <= 16384 and N * D <= 16777216 (2^24), so that
-- the text form of every value (at most 16 N D + 2 N + 1 bytes) fits far
-- below PostgreSQL's 1 GB allocation limit.  The largest values, with the
-- longest element texts, are dumped and restored in test/t/001_dump_restore.pl.

CREATE FUNCTION mv_try_limit(t text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	detail text;
	msg text;
BEGIN
	RETURN (SELECT num_vectors(v) || ' x ' || dims(v) FROM (SELECT t::multivector AS v) s);
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL, msg = MESSAGE_TEXT;
	-- a syntax error message quotes the whole input: keep its start only
	RETURN SQLSTATE || ' ' || left(msg, 60) || ' / ' || detail;
END $$;

-- zeros: '[[0,...,0],...]' with n rows of d elements, then one row of e
CREATE FUNCTION mv_zeros(n int, d int, e int DEFAULT 0) RETURNS text LANGUAGE sql AS $$
	SELECT '[' || repeat('[' || repeat('0,', d - 1) || '0],', n - 1)
		|| '[' || repeat('0,', d - 1) || '0]'
		|| CASE WHEN e > 0 THEN ',[' || repeat('0,', e - 1) || '0]' ELSE '' END || ']'
$$;

-- the largest shapes are accepted
SELECT mv_try_limit(mv_zeros(4096, 4096));
SELECT mv_try_limit(mv_zeros(16384, 1024));
SELECT mv_try_limit(mv_zeros(1, 4096));

-- one element past the limit is rejected while it is read (54000): after
-- 4096 full rows of 4096, the first element of row 4097
SELECT mv_try_limit(mv_zeros(4096, 4096, 1));
-- 16368 rows of 1025 are 16777200 elements; row 16369 crosses the limit at
-- its 17th element, before its length is compared with row 1
SELECT mv_try_limit(mv_zeros(16368, 1025, 16));
SELECT mv_try_limit(mv_zeros(16368, 1025, 17));
SELECT mv_try_limit(mv_zeros(16384, 1025));
-- the D and N limits keep their own messages
SELECT mv_try_limit(mv_zeros(1, 4097));
SELECT mv_try_limit(mv_zeros(16385, 1));

-- casts from arrays check the same limits
SELECT num_vectors(v), dims(v)
FROM (SELECT array_fill(0::real, ARRAY[4096, 4096])::multivector AS v) s;
SELECT array_fill(0::real, ARRAY[4097, 4096])::multivector IS NULL;
SELECT array_fill(0::float8, ARRAY[16384, 1025])::multivector IS NULL;
SELECT array_fill(0::real, ARRAY[1, 4097])::multivector IS NULL;
SELECT array_fill(0::real, ARRAY[16385, 1])::multivector IS NULL;

-- the SQLSTATE of the element limit, for clients that test it
DO $$
BEGIN
	PERFORM array_fill(0::real, ARRAY[8192, 4096])::multivector;
EXCEPTION WHEN program_limit_exceeded THEN
	RAISE NOTICE 'program_limit_exceeded: %', SQLERRM;
END $$;

DROP FUNCTION mv_zeros(int, int, int);
DROP FUNCTION mv_try_limit(text);
