/* colpali 0.2.0 install script, frozen as released: never edit (the current version's script is generated from sql/sections/) */
\echo Use "CREATE EXTENSION colpali" to load this file. \quit

-- ===========================================================================
-- 10: the multivector type (N x D float32 matrix) and MaxSim
--     src/multivector.c, src/maxsim.c; reference: docs/multivector.md
-- ===========================================================================

CREATE TYPE multivector;

CREATE FUNCTION multivector_in(cstring, oid, integer) RETURNS multivector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multivector_in(cstring, oid, integer) IS
	'text input of multivector: ''[[x,...],...]'', one inner list per row';

CREATE FUNCTION multivector_out(multivector) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multivector_out(multivector) IS
	'text output of multivector, shortest round-trip float formatting (bit-exact)';

CREATE FUNCTION multivector_typmod_in(cstring[]) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multivector_typmod_in(cstring[]) IS
	'type modifier of multivector(D): D, the number of dimensions per row';

CREATE FUNCTION multivector_typmod_out(integer) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multivector_typmod_out(integer) IS
	'prints the type modifier of multivector(D) as (D)';

CREATE FUNCTION multivector_recv(internal, oid, integer) RETURNS multivector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multivector_recv(internal, oid, integer) IS
	'binary input of multivector (network format in docs/multivector.md), as strict as text input';

CREATE FUNCTION multivector_send(multivector) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multivector_send(multivector) IS
	'binary output of multivector (network format in docs/multivector.md)';

CREATE TYPE multivector (
	INPUT = multivector_in,
	OUTPUT = multivector_out,
	TYPMOD_IN = multivector_typmod_in,
	TYPMOD_OUT = multivector_typmod_out,
	RECEIVE = multivector_recv,
	SEND = multivector_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = external
);
COMMENT ON TYPE multivector IS
	'N x D matrix of float32, one row per token (ColPali: D = 128); multivector(D) fixes D';

-- Casts ----------------------------------------------------------------------

CREATE FUNCTION multivector(multivector, integer, boolean) RETURNS multivector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multivector(multivector, integer, boolean) IS
	'length coercion: checks the dimension against the multivector(D) type modifier';

CREATE FUNCTION array_to_multivector(real[], integer, boolean) RETURNS multivector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION array_to_multivector(real[], integer, boolean) IS
	'cast of a two-dimensional real[] (N rows of D elements) to multivector';

CREATE FUNCTION array_to_multivector(double precision[], integer, boolean) RETURNS multivector
	AS 'MODULE_PATHNAME', 'float8_array_to_multivector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION array_to_multivector(double precision[], integer, boolean) IS
	'cast of a two-dimensional double precision[] (N rows of D elements) to multivector; elements must fit in real';

CREATE FUNCTION multivector_to_float4(multivector, integer, boolean) RETURNS real[]
	AS 'MODULE_PATHNAME', 'multivector_to_float4_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multivector_to_float4(multivector, integer, boolean) IS
	'cast of multivector to a two-dimensional real[] (N rows of D elements)';

CREATE CAST (multivector AS multivector)
	WITH FUNCTION multivector(multivector, integer, boolean) AS IMPLICIT;
COMMENT ON CAST (multivector AS multivector) IS
	'enforces the multivector(D) type modifier';

CREATE CAST (real[] AS multivector)
	WITH FUNCTION array_to_multivector(real[], integer, boolean) AS ASSIGNMENT;
COMMENT ON CAST (real[] AS multivector) IS
	'two-dimensional real[] to multivector';

CREATE CAST (double precision[] AS multivector)
	WITH FUNCTION array_to_multivector(double precision[], integer, boolean) AS ASSIGNMENT;
COMMENT ON CAST (double precision[] AS multivector) IS
	'two-dimensional double precision[] to multivector';

CREATE CAST (multivector AS real[])
	WITH FUNCTION multivector_to_float4(multivector, integer, boolean);
COMMENT ON CAST (multivector AS real[]) IS
	'multivector to a two-dimensional real[]';

-- Functions ------------------------------------------------------------------

CREATE FUNCTION dims(multivector) RETURNS integer
	AS 'MODULE_PATHNAME', 'multivector_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dims(multivector) IS
	'D, the number of dimensions of each row (reads only the header)';

CREATE FUNCTION num_vectors(multivector) RETURNS integer
	AS 'MODULE_PATHNAME', 'multivector_num_vectors' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION num_vectors(multivector) IS
	'N, the number of rows (reads only the header)';

-- l2_normalize detoasts, reads and writes the whole value (see maxsim below).
CREATE FUNCTION l2_normalize(multivector) RETURNS multivector
	AS 'MODULE_PATHNAME', 'multivector_l2_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	COST 5000;
COMMENT ON FUNCTION l2_normalize(multivector) IS
	'every row scaled to unit L2 norm; all-zero rows stay zero';

-- COST, in units of cpu_operator_cost (nominally 1/400 of a sequential page
-- read): MaxSim does N_doc x N_query x D multiply-adds, about 80 microseconds
-- for a ColPali page (1030 x 128) and a 32-token query on one core, and the
-- call first detoasts the 527 kB page (65 pages of TOAST, 150-350
-- microseconds measured), so a call costs about as much as reading 25 pages;
-- see bench/results/maxsim.md.
CREATE FUNCTION maxsim(multivector, multivector) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	COST 10000;
COMMENT ON FUNCTION maxsim(multivector, multivector) IS
	'MaxSim(doc, query): sum over query rows of the maximum dot product with any document row';

CREATE FUNCTION maxsim_scalar(multivector, multivector) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	COST 1000000;
COMMENT ON FUNCTION maxsim_scalar(multivector, multivector) IS
	'maxsim() computed by the scalar reference kernel (for tests; returns the same bits as maxsim, much slower)';

CREATE FUNCTION maxsim_kernel() RETURNS text
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION maxsim_kernel() IS
	'the MaxSim kernel chosen for this CPU: avx512, avx2 or scalar';

CREATE FUNCTION multivector_negative_maxsim(multivector, multivector) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
	COST 10000;
COMMENT ON FUNCTION multivector_negative_maxsim(multivector, multivector) IS
	'-maxsim(doc, query): the function behind the <#> operator';

CREATE OPERATOR <#> (
	LEFTARG = multivector,
	RIGHTARG = multivector,
	FUNCTION = multivector_negative_maxsim
);
COMMENT ON OPERATOR <#> (multivector, multivector) IS
	'negative MaxSim, doc <#> query (right operand is the query): ORDER BY doc <#> query gives the best first';

-- ---------------------------------------------------------------------------
-- Encoder: ColPali page images and queries to multivectors (src/encode.c)
-- ---------------------------------------------------------------------------
-- STABLE: the result depends on the configured model (colpali.model_path),
-- not only on the argument.  COST is in units of cpu_operator_cost: a page
-- costs seconds of CPU (or milliseconds of GPU), a query a tenth of that, so
-- the planner evaluates them as late and as rarely as it can.

CREATE FUNCTION colpali_query(text) RETURNS multivector
	AS 'MODULE_PATHNAME', 'colpali_query'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 100000;

COMMENT ON FUNCTION colpali_query(text) IS
'embeds a search query with the ColPali model in colpali.model_path: one 128-dimensional row per query token';

CREATE FUNCTION colpali_image(bytea) RETURNS multivector
	AS 'MODULE_PATHNAME', 'colpali_image'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 1000000;

COMMENT ON FUNCTION colpali_image(bytea) IS
'embeds a page image (PNG, JPEG, BMP, GIF or TGA bytes) with the ColPali model in colpali.model_path: one 128-dimensional row per image and prompt token';

CREATE FUNCTION colpali_images(bytea[]) RETURNS multivector[]
	AS 'MODULE_PATHNAME', 'colpali_images'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 1000000;

COMMENT ON FUNCTION colpali_images(bytea[]) IS
'embeds many page images in batches of colpali.max_batch; element i of the result belongs to element i of the argument (NULL stays NULL)';

-- mvivf access method: token-level IVF index for ORDER BY emb <#> query LIMIT k

CREATE FUNCTION mvivfhandler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME' LANGUAGE C;
COMMENT ON FUNCTION mvivfhandler(internal) IS
	'handler of the mvivf index access method';

CREATE ACCESS METHOD mvivf TYPE INDEX HANDLER mvivfhandler;
COMMENT ON ACCESS METHOD mvivf IS
	'token-level IVF index with exact MaxSim rerank, for ORDER BY multivector <#> multivector';

CREATE OPERATOR CLASS multivector_maxsim_ops
	DEFAULT FOR TYPE multivector USING mvivf AS
	OPERATOR 1 <#> (multivector, multivector) FOR ORDER BY pg_catalog.float_ops;
COMMENT ON OPERATOR CLASS multivector_maxsim_ops USING mvivf IS
	'orders documents by negative MaxSim (<#>) against a query multivector';
COMMENT ON OPERATOR FAMILY multivector_maxsim_ops USING mvivf IS
	'operator family of multivector_maxsim_ops';

-- ---------------------------------------------------------------------------
-- Bulk encoding: fill an embedding column in batches (uses colpali_images)
-- ---------------------------------------------------------------------------
-- One transaction per batch.  A batch that fails because of an image
-- (undecodable, unsupported, over a limit) is encoded again row by row, each
-- row in its own subtransaction: the bad rows are reported in a WARNING that
-- names their key, keep a NULL embedding and are not tried again in this
-- run, and every other row is embedded.  Any other error (no model, cancel)
-- ends the run; the batches committed before it are kept.

CREATE PROCEDURE colpali_embed_images(
	tbl regclass,
	image_column name,
	embedding_column name,
	batch_size integer DEFAULT 16)
	LANGUAGE plpgsql
	AS $colpali$
DECLARE
	total bigint;
	done bigint := 0;
	failed bigint := 0;
	n bigint;
	tids tid[];
	skipped tid[] := '{}';
	key_columns text;
	row_key text;
	tid_i tid;
BEGIN
	IF batch_size IS NULL OR batch_size < 1 THEN
		RAISE EXCEPTION 'batch_size must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s WHERE %I IS NULL AND %I IS NOT NULL',
							  tbl, embedding_column, image_column)
		INTO total;
	-- the primary key columns name a row in messages (else its ctid)
	SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY k.ord)
		INTO key_columns
		FROM pg_catalog.pg_index i,
			 LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord),
			 pg_catalog.pg_attribute a
		WHERE i.indrelid OPERATOR(pg_catalog.=) tbl AND i.indisprimary
		  AND a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.=) k.attnum;
	LOOP
		-- the next rows to do, locked until this batch commits
		EXECUTE pg_catalog.format($q$
			SELECT pg_catalog.array_agg(ctid) FROM (
				SELECT ctid FROM %1$s
				WHERE %3$I IS NULL AND %2$I IS NOT NULL
				  AND ctid OPERATOR(pg_catalog.<>) ALL ($1)
				LIMIT %4$s
				FOR UPDATE SKIP LOCKED) todo$q$,
			tbl, image_column, embedding_column, batch_size)
			INTO tids USING skipped;
		EXIT WHEN tids IS NULL;
		BEGIN
			-- encode the batch together, store
			EXECUTE pg_catalog.format($q$
				WITH todo AS (
					SELECT ctid AS tid, %2$I AS img FROM %1$s
					WHERE ctid OPERATOR(pg_catalog.=) ANY ($1)),
				enc AS (
					SELECT pg_catalog.unnest(pg_catalog.array_agg(tid)) AS tid,
						   pg_catalog.unnest(@extschema@.colpali_images(pg_catalog.array_agg(img))) AS emb
					FROM todo)
				UPDATE %1$s AS t SET %3$I = enc.emb FROM enc WHERE t.ctid OPERATOR(pg_catalog.=) enc.tid$q$,
				tbl, image_column, embedding_column)
				USING tids;
			GET DIAGNOSTICS n = ROW_COUNT;
		EXCEPTION WHEN invalid_binary_representation OR feature_not_supported
					   OR program_limit_exceeded THEN
			-- an image of the batch is bad: row by row, skipping the bad ones
			n := 0;
			FOREACH tid_i IN ARRAY tids LOOP
				BEGIN
					EXECUTE pg_catalog.format(
						'UPDATE %1$s SET %3$I = @extschema@.colpali_image(%2$I) WHERE ctid OPERATOR(pg_catalog.=) $1',
						tbl, image_column, embedding_column)
						USING tid_i;
					n := n + 1;
				EXCEPTION WHEN invalid_binary_representation OR feature_not_supported
							   OR program_limit_exceeded THEN
					IF key_columns IS NULL THEN
						row_key := pg_catalog.format('ctid %s', tid_i);
					ELSE
						EXECUTE pg_catalog.format('SELECT pg_catalog.format(%L, ROW(%s)::text) FROM %s WHERE ctid OPERATOR(pg_catalog.=) $1',
												  'key (' || key_columns || ')=%s', key_columns, tbl)
							INTO row_key USING tid_i;
					END IF;
					RAISE WARNING 'colpali_embed_images: skipped the row with %: %', row_key, SQLERRM;
					skipped := skipped OPERATOR(pg_catalog.||) tid_i;
					failed := failed + 1;
				END;
			END LOOP;
		END;
		done := done + n;
		RAISE NOTICE 'colpali_embed_images: % of % images embedded', done, total;
		COMMIT;
	END LOOP;
	IF failed > 0 THEN
		RAISE WARNING 'colpali_embed_images: % of % images could not be embedded', failed, total
			USING HINT = 'Their embeddings stay NULL; the warnings above name the rows.';
	END IF;
END
$colpali$;

COMMENT ON PROCEDURE colpali_embed_images(regclass, name, name, integer) IS
'fills embedding_column with colpali_image(image_column) for rows where it is NULL, batch_size rows per transaction, reporting progress as NOTICEs and each image that cannot be embedded as a WARNING (its row keeps a NULL embedding); CALL it outside an explicit transaction block';

-- ---------------------------------------------------------------------------
-- Encoder statistics (src/stats.c)
-- ---------------------------------------------------------------------------
-- Readable by every role, like PostgreSQL's own statistics views: the
-- superuser-only model path is NULL for roles that may not read the setting.

CREATE FUNCTION colpali_stats(
	OUT mode text,
	OUT device text,
	OUT model text,
	OUT worker_pid integer,
	OUT queue_depth integer,
	OUT requests bigint,
	OUT batches bigint,
	OUT items bigint,
	OUT max_batch_items bigint,
	OUT errors bigint,
	OUT mean_latency_ms double precision,
	OUT p99_latency_ms double precision,
	OUT worker_starts bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'colpali_stats'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION colpali_stats() IS
'encoder statistics: the background worker''s (shared by all sessions) when it is used, else this session''s in-process calls';

CREATE VIEW colpali_stats AS SELECT * FROM colpali_stats();

COMMENT ON VIEW colpali_stats IS
'one row of encoder statistics, see colpali_stats()';

GRANT SELECT ON colpali_stats TO PUBLIC;

-- ===========================================================================
-- 60: where a page matched a query (src/explain.c)
-- ===========================================================================

CREATE FUNCTION colpali_explain(page multivector, query multivector,
	grid_width integer DEFAULT NULL, image_rows integer DEFAULT NULL,
	OUT query_row integer, OUT page_row integer, OUT score double precision,
	OUT patch_y integer, OUT patch_x integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'colpali_explain'
LANGUAGE C IMMUTABLE PARALLEL SAFE
COST 10000 ROWS 32;

COMMENT ON FUNCTION colpali_explain(multivector, multivector, integer, integer) IS
'for each query row (from 0): the best-matching page row, their dot product (the scores add up to maxsim(page, query)), and for image rows the patch position (patch_y, patch_x) in a grid grid_width patches wide whose first image_rows rows (default grid_width^2) are image rows; ColPali at 448 px: grid_width 32';
