-- maxsim(), the <#> operator and the SIMD kernels

-- small cases computed by hand
SELECT maxsim('[[1,0],[0,1]]', '[[1,1],[2,0.5]]');        -- max(1,1) + max(2,0.5) = 3
SELECT '[[1,0],[0,1]]'::multivector <#> '[[1,1],[2,0.5]]'; -- -3
SELECT maxsim('[[-1,-2]]', '[[1,1],[0,1]]');               -- -3 + -2 = -5
SELECT maxsim('[[1,2,3]]', '[[1,2,3]]');                   -- 14
-- asymmetric: the right operand is the query
SELECT maxsim('[[1,0],[0,1]]', '[[1,0]]') AS doc_query, maxsim('[[1,0]]', '[[1,0],[0,1]]') AS query_doc;
SELECT '[[1,0],[0,1]]'::multivector <#> '[[1,0]]' AS a, '[[1,0]]'::multivector <#> '[[1,0],[0,1]]' AS b;
-- one query row matching several doc rows counts once; each query row counts
SELECT maxsim('[[1,0],[1,0],[1,0]]', '[[1,0]]'), maxsim('[[1,0]]', '[[1,0],[1,0],[1,0]]');
-- extremes: products overflow float32 to infinity
SELECT maxsim('[[3.4028235e38]]', '[[2]]'), maxsim('[[1e-45]]', '[[1e-45]]');

-- dimension mismatch names both
SELECT maxsim('[[1,2,3]]', '[[1,2]]');
SELECT '[[1,2]]'::multivector <#> '[[1,2,3],[4,5,6]]';

-- NULLs
SELECT maxsim(NULL, '[[1]]'), maxsim('[[1]]', NULL), NULL::multivector <#> '[[1]]';

-- the operator and functions are immutable, strict, parallel safe
SELECT p.proname, p.provolatile, p.proisstrict, p.proparallel, p.procost > 1 AS costly
FROM pg_proc p
WHERE p.proname IN ('maxsim', 'multivector_negative_maxsim', 'dims', 'num_vectors', 'l2_normalize')
	AND p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
ORDER BY 1;
SELECT oprname, oprleft::regtype, oprright::regtype, oprresult::regtype, oprcode
FROM pg_operator WHERE oprname = '<#>' AND oprleft = 'multivector'::regtype;

-- randomized check against an independent double-precision reference
-- computed in SQL, over shapes that exercise every kernel path: dimensions
-- 1..128 (vector tails), doc rows 1..23 (register-block tails), query rows
-- 1..70 (lane padding and two blocks of 64 query rows, for D <= 17 to keep
-- the reference join small)
SELECT setseed(0.25);
CREATE TEMP TABLE shapes AS
SELECT s AS sid, d AS dim FROM (VALUES (1, 1), (2, 7), (3, 16), (4, 17), (5, 33), (6, 128), (7, 66)) v(s, d);
CREATE TEMP TABLE docs AS
SELECT sh.sid, g AS id,
	(SELECT array_agg(ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, sh.dim) k WHERE g > 0 AND r > 0))
	 FROM generate_series(1, 1 + ((g - 1) * 7) % 23) r)::multivector AS emb
FROM shapes sh, generate_series(1, 10) g;
CREATE TEMP TABLE queries AS
SELECT sh.sid, n AS qid,
	(SELECT array_agg(ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, sh.dim) k WHERE n > 0 AND r > 0))
	 FROM generate_series(1, (ARRAY[1, 5, 16, 17, 32, 65, 70])[n]) r)::multivector AS q
FROM shapes sh, generate_series(1, 7) n
WHERE sh.dim <= 17 OR n <= 5;
SELECT count(*), sum(num_vectors(emb)), min(num_vectors(emb)), max(num_vectors(emb)) FROM docs;

-- elements with their row i (or j) and column k
CREATE TEMP TABLE de AS
SELECT d.sid, d.id, (u.o - 1) / dims(d.emb) AS i, (u.o - 1) % dims(d.emb) AS k, u.x::float8 AS x
FROM docs d, unnest(d.emb::real[]) WITH ORDINALITY AS u(x, o);
CREATE TEMP TABLE qe AS
SELECT q.sid, q.qid, (u.o - 1) / dims(q.q) AS j, (u.o - 1) % dims(q.q) AS k, u.x::float8 AS x
FROM queries q, unnest(q.q::real[]) WITH ORDINALITY AS u(x, o);
-- reference: exact-enough double sums; bound: the documented float32 error
-- bound g * sum_j max_i sum_k |d q|, g = D u / (1 - D u), u = 2^-24
CREATE TEMP TABLE ref AS
SELECT sid, id, qid, sum(best) AS maxsim, sum(best_abs) AS absmax
FROM (SELECT sid, id, qid, j, max(dot) AS best, max(absdot) AS best_abs
	  FROM (SELECT de.sid, de.id, qe.qid, qe.j, de.i,
				   sum(de.x * qe.x) AS dot, sum(abs(de.x * qe.x)) AS absdot
			FROM de JOIN qe ON de.sid = qe.sid AND de.k = qe.k
			GROUP BY 1, 2, 3, 4, 5) dots
	  GROUP BY 1, 2, 3, 4) best
GROUP BY 1, 2, 3;
SELECT count(*) AS pairs,
	count(*) FILTER (WHERE abs(maxsim(d.emb, q.q) - r.maxsim)
		<= r.absmax * (s.dim * 2 ^ -24) / (1 - s.dim * 2 ^ -24) + 1e-12) AS within_bound,
	count(*) FILTER (WHERE maxsim(d.emb, q.q) = maxsim_scalar(d.emb, q.q)) AS simd_equals_scalar,
	count(*) FILTER (WHERE d.emb <#> q.q = -maxsim(d.emb, q.q)) AS operator_is_negative
FROM ref r JOIN docs d USING (sid, id) JOIN queries q USING (sid, qid) JOIN shapes s USING (sid);
-- the error is far below the bound in practice
SELECT max(abs(maxsim(d.emb, q.q) - r.maxsim) / r.absmax) < 1e-5 AS small_relative_error
FROM ref r JOIN docs d USING (sid, id) JOIN queries q USING (sid, qid);

-- ORDER BY <#> LIMIT returns the best documents first, as the reference ranks them
SELECT sid, qid,
	(SELECT array_agg(id) FROM (SELECT d.id FROM docs d WHERE d.sid = q.sid
		ORDER BY d.emb <#> q.q LIMIT 3) t) AS by_operator,
	(SELECT array_agg(id) FROM (SELECT r.id FROM ref r WHERE r.sid = q.sid AND r.qid = q.qid
		ORDER BY r.maxsim DESC LIMIT 3) t) = 
	(SELECT array_agg(id) FROM (SELECT d.id FROM docs d WHERE d.sid = q.sid
		ORDER BY d.emb <#> q.q LIMIT 3) t) AS same_as_reference
FROM queries q WHERE q.qid IN (2, 5) ORDER BY 1, 2;

-- maxsim in a table scan, with NULL rows skipped by ORDER BY ... NULLS LAST
CREATE TEMP TABLE t (id int, emb multivector(2));
INSERT INTO t VALUES (1, '[[1,0],[0,1]]'), (2, '[[0.5,0.5]]'), (3, NULL), (4, '[[-1,0],[0,-1]]'), (5, '[[2,2],[0,0]]');
SELECT id, emb <#> '[[1,0],[0,1]]' AS dist FROM t ORDER BY emb <#> '[[1,0],[0,1]]' LIMIT 3;
SELECT id FROM t ORDER BY emb <#> '[[1,0],[0,1]]' DESC NULLS LAST LIMIT 2;
SELECT id FROM t WHERE emb <#> '[[1,1]]' < -1.5 ORDER BY id;

-- which kernel ran (informational: avx512, avx2 or scalar)
SELECT maxsim_kernel() IN ('avx512', 'avx2', 'scalar');
