-- colpali_explain: per query row, the best page row and its score
SELECT setseed(0.75);
CREATE TABLE ex (id int, page multivector, query multivector);
-- 20 pages of 40 rows (36 "image" rows of a 6 x 6 grid + 4 text rows), queries of 5 rows, 16 dims
INSERT INTO ex
SELECT p,
	(SELECT array_agg(r ORDER BY i)::multivector FROM (SELECT i, array_agg((random() - 0.5)::real ORDER BY d) AS r
		FROM generate_series(1, 40) i, generate_series(1, 16) d WHERE p > 0 GROUP BY i) s),
	(SELECT array_agg(r ORDER BY i)::multivector FROM (SELECT i, array_agg((random() - 0.5)::real ORDER BY d) AS r
		FROM generate_series(1, 5) i, generate_series(1, 16) d WHERE p > 0 GROUP BY i) s)
FROM generate_series(1, 20) p;

-- an independent reference in double precision: per query row, the argmax
-- over page rows of the dot product
CREATE FUNCTION ex_ref(page multivector, query multivector)
RETURNS TABLE (query_row int, page_row int, score float8) LANGUAGE sql AS $$
	WITH dots AS (
		SELECT qi - 1 AS qr, pi - 1 AS pr,
			(SELECT sum(x::float8 * y::float8) FROM unnest((query::real[])[qi:qi][:], (page::real[])[pi:pi][:]) AS u(x, y)) AS dot
		FROM generate_series(1, num_vectors(query)) qi, generate_series(1, num_vectors(page)) pi)
	SELECT DISTINCT ON (qr) qr, pr, dot FROM dots ORDER BY qr, dot DESC
$$;

-- same best rows as the reference, scores within float32 rounding, and the
-- scores of a query add up exactly to maxsim
SELECT count(*) AS rows_checked,
	count(*) FILTER (WHERE e.page_row = r.page_row) AS same_best_row,
	max(abs(e.score - r.score)) < 1e-5 AS scores_close
FROM ex, LATERAL colpali_explain(page, query) e
	JOIN LATERAL ex_ref(page, query) r ON r.query_row = e.query_row;
SELECT bool_and(s = maxsim(page, query)) AS sums_equal_maxsim
FROM (SELECT page, query, (SELECT sum(score ORDER BY query_row) FROM colpali_explain(page, query)) AS s FROM ex) x;

-- patch positions: rows below grid_width^2 (or image_rows) are patches
-- (aggregated: the random pages differ between PostgreSQL versions, whose
-- plans call random() in different orders)
SELECT count(*) AS rows,
	bool_and(CASE WHEN page_row < 36 THEN page_row = patch_y * 6 + patch_x
			 ELSE patch_y IS NULL AND patch_x IS NULL END) AS consistent,
	bool_and(patch_y BETWEEN 0 AND 5 AND patch_x BETWEEN 0 AND 5) FILTER (WHERE page_row < 36) AS on_grid,
	count(DISTINCT page_row) > 1 AS several_rows
FROM ex, LATERAL colpali_explain(page, query, 6) WHERE id <= 4;
SELECT count(*) FILTER (WHERE patch_y IS NULL) = count(*) FILTER (WHERE page_row >= 30) AS text_rows_have_no_patch
FROM ex, LATERAL colpali_explain(page, query, 5, 30);
-- a tiny example by hand
SELECT * FROM colpali_explain('[[1,0],[0,1],[0.6,0.8]]', '[[0,1],[1,1]]', 1, 2);

-- errors
SELECT * FROM colpali_explain('[[1,0]]', '[[1,0,0]]');
SELECT * FROM colpali_explain('[[1,0]]', '[[1,0]]', 0);
SELECT * FROM colpali_explain('[[1,0]]', '[[1,0]]', 2, -1);
DROP TABLE ex;
DROP FUNCTION ex_ref;
