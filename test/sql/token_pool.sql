-- colpali_pool: hierarchical token pooling (docs/pooling.md).  The goldens of
-- colpali-engine are compared in the engine test (test_token_pool) and in
-- TAP (061_token_pool.pl); this file checks the SQL surface.

-- two obvious pairs: each pooled row is the normalised mean of a pair,
-- (0.95, 0.05) / sqrt(0.905), computed here in double precision
SELECT colpali_pool('[[1,0],[0.9,0.1],[0,1],[0.1,0.9]]', 2) AS pooled;
WITH p AS (SELECT colpali_pool('[[1,0],[0.9,0.1],[0,1],[0.1,0.9]]', 2)::real[] AS a)
SELECT abs(a[1][1] - 0.95 / sqrt(0.905)) < 1e-6 AS r1_x, abs(a[1][2] - 0.05 / sqrt(0.905)) < 1e-6 AS r1_y,
	abs(a[2][1] - 0.05 / sqrt(0.905)) < 1e-6 AS r2_x, abs(a[2][2] - 0.95 / sqrt(0.905)) < 1e-6 AS r2_y
FROM p;

-- a page-shaped value (1030 x 128, unit rows) and a smaller one (200 x 16)
CREATE TABLE pool_pages (id int, v multivector);
INSERT INTO pool_pages SELECT s, l2_normalize((SELECT array_agg(ARRAY(
		SELECT sin(s * 1000003.0 + r * 128 + k * (1 + r % 7))::real
		FROM generate_series(0, d - 1) k WHERE r >= 0))
	FROM generate_series(0, n - 1) r)::multivector)
FROM (VALUES (1, 1030, 128), (2, 200, 16)) AS p(s, n, d);

-- at most max(N / factor, 1) rows, each of unit length; factor 1 is the identity
CREATE TABLE pooled AS
SELECT id, f, colpali_pool(v, f) AS p FROM pool_pages, (VALUES (1), (2), (3), (9), (5000)) AS fs(f)
WHERE id = 2 OR f IN (1, 3);
SELECT id, f, num_vectors(p) AS rows, dims(p) AS dims FROM pooled ORDER BY id, f;
SELECT id, multivector_send(p) = multivector_send(v) AS identity
FROM pooled JOIN pool_pages USING (id) WHERE f = 1 ORDER BY id;
WITH e AS (SELECT id, f, dims(p) AS d, x, i FROM pooled, unnest(p::real[]) WITH ORDINALITY AS u(x, i)),
	 norms AS (SELECT id, f, (i - 1) / d AS r, sqrt(sum(x::float8 * x)) AS n FROM e GROUP BY id, f, d, r)
SELECT id, f, count(*) AS rows, bool_and(abs(n - 1) < 1e-6) AS unit FROM norms GROUP BY id, f ORDER BY id, f;

-- deterministic: the same input gives the same bits
SELECT id, multivector_send(p) = multivector_send(colpali_pool(v::text::multivector, 3)) AS same
FROM pooled JOIN pool_pages USING (id) WHERE f = 3 ORDER BY id;

-- pooling keeps most of the score of a query made of page rows
SELECT id, maxsim(p, v) / maxsim(v, v) > 0.5 AS keeps_most
FROM pooled JOIN pool_pages USING (id) WHERE f = 3 ORDER BY id;

-- NULL in, NULL out
SELECT colpali_pool(NULL, 3) IS NULL AS null_mv, colpali_pool('[[1,2]]', NULL) IS NULL AS null_factor;
-- one row: one normalised row
SELECT colpali_pool('[[3,0,4]]', 3);

-- errors
SELECT colpali_pool('[[1,0],[0,1]]', 0);
SELECT colpali_pool('[[1,0],[0,1]]', -2);
SELECT colpali_pool('[[1,0],[0,1]]', 1000001);
SELECT colpali_pool('[]', 2);
SELECT colpali_pool(array_fill(0.5::real, ARRAY[2049, 4])::multivector, 2);
SELECT colpali_pool('[[3e30,0],[0,1]]', 2);

-- the setting
SET colpali.pool_factor = 0;
SET colpali.pool_factor = 3;
SHOW colpali.pool_factor;
RESET colpali.pool_factor;

-- a long pooling (2048 rows) stops on a statement timeout
CREATE TABLE pool_big AS SELECT (SELECT array_agg(ARRAY[sin(r)::real, cos(r * 1.7)::real, sin(r * 0.3)::real])
	FROM generate_series(1, 2048) r)::multivector AS v;
SET statement_timeout = '100ms';
SELECT num_vectors(colpali_pool(v, 2)) FROM pool_big;
RESET statement_timeout;

DROP TABLE pool_pages, pooled, pool_big;
