-- large values: ColPali pages of 1030 x 128 (527 kB) are stored out of line
-- (STORAGE external), toasted and read back unchanged

CREATE TABLE mv_big (id int, v multivector(128));
SELECT attstorage FROM pg_attribute WHERE attrelid = 'mv_big'::regclass AND attname = 'v';

-- deterministic, L2-normalised page-shaped values
CREATE FUNCTION mv_page(seed int) RETURNS multivector LANGUAGE sql IMMUTABLE AS $$
	SELECT l2_normalize((SELECT array_agg(ARRAY(
			SELECT sin(seed * 1000003.0 + r * 128 + k)::real
			FROM generate_series(0, 127) k WHERE r >= 0))
		FROM generate_series(0, 1029) r)::multivector)
$$;
INSERT INTO mv_big SELECT s, mv_page(s) FROM generate_series(1, 3) s;

SELECT id, dims(v), num_vectors(v), pg_column_size(v) FROM mv_big ORDER BY id;
-- the heap holds TOAST pointers only; the data lives in the TOAST table
SELECT pg_relation_size(c.reltoastrelid) >= 3 * 527376 AS toasted,
	pg_relation_size(c.oid) <= 8192 AS small_heap
FROM pg_class c WHERE c.relname = 'mv_big';

-- read back identical, through binary and text
SELECT id, multivector_send(v) = multivector_send(mv_page(id)) AS stored_intact,
	multivector_send(v::text::multivector) = multivector_send(v) AS text_round_trip,
	multivector_send(v::real[]::multivector) = multivector_send(v) AS array_round_trip
FROM mv_big ORDER BY id;
SELECT length(v::text) > 1000000 AS long_text FROM mv_big WHERE id = 1;

-- MaxSim on a page: the SIMD kernel equals the scalar oracle bit for bit;
-- a page against itself scores ~1030 (each unit row finds itself)
SELECT id, maxsim(v, (v::real[])[1:32][1:128]::multivector)
		= maxsim_scalar(v, (v::real[])[1:32][1:128]::multivector) AS simd_equals_scalar,
	abs(maxsim(v, v) - 1030) < 1e-3 AS self_score
FROM mv_big ORDER BY id;

-- ranking of toasted pages with ORDER BY ... LIMIT: the query is taken from page 2
SELECT id FROM mv_big
ORDER BY v <#> (SELECT (v::real[])[100:131][1:128]::multivector FROM mv_big WHERE id = 2)
LIMIT 1;

-- updating another column keeps the value
UPDATE mv_big SET id = id + 10;
SELECT id, multivector_send(v) = multivector_send(mv_page(id - 10)) FROM mv_big ORDER BY id;

DROP TABLE mv_big;
DROP FUNCTION mv_page(int);
