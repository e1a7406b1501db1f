-- Screened exact MaxSim (colpali.maxsim_screening, on by default): where the
-- CPU has AMX-BF16, document rows are screened with a bf16 pass and a
-- rigorous error bound, and only the rows that can hold a query row's
-- maximum reach the exact kernel.  Every score must have the bits of the
-- unscreened kernel, for float and half pages, streamed (out of line) or in
-- memory, on pages made to defeat a loose bound: duplicated rows, rows one
-- ulp apart, flat pages, rows of norms from 1e-20 to 1e15, subnormal values,
-- a row above the screening limit, zero and orthogonal query rows.  (On a
-- CPU without AMX both settings run the same kernel and the test passes
-- trivially; CI runs where AMX exists.)
SELECT maxsim('[[1]]', '[[1]]');	-- loads the library and its settings
SHOW colpali.maxsim_screening;
SELECT setseed(0.5);
CREATE FUNCTION scr_page(kind int, nrows int, dim int) RETURNS real[]
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	base real[];
	r real[];
	out real[] := '{}';
	i int;
	k int;
	s float8;
BEGIN
	base := ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, dim));
	FOR i IN 1 .. nrows LOOP
		r := ARRAY(SELECT (random() * 2 - 1)::real FROM generate_series(1, dim));
		IF kind = 1 THEN			-- copies of three rows
			IF i > 3 THEN r := ARRAY(SELECT unnest(out[1 + i % 3:1 + i % 3][1:dim])); END IF;
		ELSIF kind = 2 THEN		-- the base row, one value moved by about an ulp
			r := base;
			k := 1 + (random() * (dim - 1))::int;
			r[k] := (r[k] * (1 + 1.2e-7 * (random() - 0.5)))::real;
		ELSIF kind = 3 THEN		-- flat: the base row plus 1e-4 noise
			FOR k IN 1 .. dim LOOP r[k] := (base[k] + 1e-4 * (random() - 0.5))::real; END LOOP;
		ELSIF kind = 4 THEN		-- norms from 1e-20 to 1e15
			s := 10 ^ (random() * 35 - 20);
			FOR k IN 1 .. dim LOOP r[k] := (r[k] * s)::real; END LOOP;
		ELSIF kind = 5 THEN		-- subnormal values in some rows
			IF i % 4 = 0 THEN
				FOR k IN 1 .. dim LOOP r[k] := (r[k] * 1e-39)::real; END LOOP;
			END IF;
		ELSIF kind = 6 THEN		-- one row above the screening limit (2^60)
			IF i = nrows / 2 THEN
				FOR k IN 1 .. dim LOOP r[k] := (r[k] * 1e19)::real; END LOOP;
			END IF;
		END IF;
		out := out || ARRAY[r];
	END LOOP;
	RETURN out;
END $$;
-- 128-dim pages of 300-340 rows are stored out of line (read chunk by chunk)
CREATE TABLE scr_docs (id int, kind int, f multivector, h halfmultivector);
INSERT INTO scr_docs
SELECT 10 * kind + g, kind, scr_page(kind, 300 + 10 * g, 128)::multivector, NULL
FROM generate_series(0, 6) kind, generate_series(1, 4) g;
-- half pages: the same values rounded (all but the pages beyond half's range)
UPDATE scr_docs SET h = f::halfmultivector WHERE kind NOT IN (4, 6);
-- queries: random rows, plus a query whose rows include a copy of a page's
-- row, a zero row and a row orthogonal to every row of a page
CREATE TABLE scr_queries (qid int, q multivector);
INSERT INTO scr_queries
SELECT n, scr_page(0, 24, 128)::multivector FROM generate_series(1, 3) n;
INSERT INTO scr_queries
SELECT 4, ((SELECT (f::real[])[5:5][1:128] FROM scr_docs WHERE id = 31) ||
		   array_fill(0::real, ARRAY[1, 128]) ||
		   scr_page(0, 3, 128))::multivector;
ALTER TABLE scr_queries ADD qh halfmultivector;
UPDATE scr_queries SET qh = q;

CREATE FUNCTION scr_scores() RETURNS TABLE (id int, qid int, ff float8, hf float8, hh float8,
	ff_mem float8, hf_mem float8, neg float8)
LANGUAGE sql VOLATILE AS $$
	SELECT d.id, q.qid, maxsim(d.f, q.q), maxsim(d.h, q.q), maxsim(d.h, q.qh),
		maxsim(d.f::real[]::multivector, q.q), maxsim(d.h::real[]::halfmultivector, q.q),
		d.f <#> q.q
	FROM scr_docs d, scr_queries q
$$;
CREATE TABLE scr_on AS SELECT * FROM scr_scores();
SET colpali.maxsim_screening = off;
CREATE TABLE scr_off AS SELECT * FROM scr_scores();
RESET colpali.maxsim_screening;
SELECT count(*) AS scores,
	count(*) FILTER (WHERE s.ff = o.ff AND s.neg = o.neg) AS float_same,
	count(*) FILTER (WHERE s.hf IS NOT DISTINCT FROM o.hf AND s.hh IS NOT DISTINCT FROM o.hh) AS half_same,
	count(*) FILTER (WHERE s.ff_mem = o.ff_mem AND s.hf_mem IS NOT DISTINCT FROM o.hf_mem) AS in_memory_same,
	count(*) FILTER (WHERE s.ff = s.ff_mem) AS streamed_equals_in_memory
FROM scr_on s JOIN scr_off o USING (id, qid);
-- float8 equality treats -0 and +0 (and NaNs) as equal: compare the text too
SELECT count(*) FILTER (WHERE s.ff::text = o.ff::text AND s.hf::text IS NOT DISTINCT FROM o.hf::text) AS same_text
FROM scr_on s JOIN scr_off o USING (id, qid);
-- and the scalar oracle
SELECT count(*) FILTER (WHERE s.ff = maxsim_scalar(d.f, q.q)) AS equals_scalar_oracle
FROM scr_on s JOIN scr_docs d USING (id) JOIN scr_queries q USING (qid);

-- ORDER BY <#> LIMIT: the same rows and distances either way
CREATE FUNCTION scr_top() RETURNS text LANGUAGE sql AS $$
	SELECT string_agg(qid || ':' || ids, ' ' ORDER BY qid) FROM (
		SELECT q.qid, (SELECT string_agg(id || '/' || dist, ',') FROM (
			SELECT id, f <#> q.q AS dist FROM scr_docs ORDER BY 2, 1 LIMIT 5) t) AS ids
		FROM scr_queries q) s
$$;
CREATE TABLE scr_top_on AS SELECT scr_top() AS top;
SET colpali.maxsim_screening = off;
SELECT top = scr_top() AS same_order FROM scr_top_on;
RESET colpali.maxsim_screening;

DROP TABLE scr_docs, scr_queries, scr_on, scr_off, scr_top_on;
DROP FUNCTION scr_page, scr_scores, scr_top;
