/* colpali 0.3.0 install script, frozen as released: never edit (the current version's script is generated from sql/sections/) */
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

-- ===========================================================================
-- 15: compact multivectors: halfmultivector (IEEE binary16 elements) and
--     bitmultivector (one sign bit per dimension), casts between all formats,
--     and MaxSim of half and binary documents
--     src/multivector_compact.c, src/maxsim_compact.c; reference: docs/multivector.md
-- ===========================================================================

-- multivector is the preferred type of its category, so that calls whose
-- arguments are all untyped literals keep resolving to multivector as they
-- did before the compact types existed: maxsim('[[..]]', '[[..]]'),
-- dims('[[..]]'), '[[..]]' <#> '[[..]]'.  (CREATE TYPE has no way to change
-- this afterwards and ALTER TYPE cannot set it; the extension is untrusted,
-- so its scripts run as a superuser.)
UPDATE pg_catalog.pg_type SET typispreferred = true
WHERE oid = 'multivector'::pg_catalog.regtype;

CREATE TYPE halfmultivector;

CREATE FUNCTION halfmultivector_in(cstring, oid, integer) RETURNS halfmultivector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION halfmultivector_in(cstring, oid, integer) IS
	'text input of halfmultivector: ''[[x,...],...]'', each number rounded to nearest-even half';

CREATE FUNCTION halfmultivector_out(halfmultivector) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION halfmultivector_out(halfmultivector) IS
	'text output of halfmultivector: the exact value of each element (bit-exact round trip)';

CREATE FUNCTION halfmultivector_recv(internal, oid, integer) RETURNS halfmultivector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION halfmultivector_recv(internal, oid, integer) IS
	'binary input of halfmultivector (header format 1, big-endian binary16 elements)';

CREATE FUNCTION halfmultivector_send(halfmultivector) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION halfmultivector_send(halfmultivector) IS
	'binary output of halfmultivector (header format 1, big-endian binary16 elements)';

CREATE TYPE halfmultivector (
	INPUT = halfmultivector_in,
	OUTPUT = halfmultivector_out,
	TYPMOD_IN = multivector_typmod_in,
	TYPMOD_OUT = multivector_typmod_out,
	RECEIVE = halfmultivector_recv,
	SEND = halfmultivector_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = external
);
COMMENT ON TYPE halfmultivector IS
	'N x D matrix of IEEE half-precision numbers (2 bytes an element); halfmultivector(D) fixes D';

CREATE TYPE bitmultivector;

CREATE FUNCTION bitmultivector_in(cstring, oid, integer) RETURNS bitmultivector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION bitmultivector_in(cstring, oid, integer) IS
	'text input of bitmultivector: ''[0101...,1100...]'', one run of 0 and 1 a row';

CREATE FUNCTION bitmultivector_out(bitmultivector) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION bitmultivector_out(bitmultivector) IS
	'text output of bitmultivector: ''[0101...,1100...]''';

CREATE FUNCTION bitmultivector_recv(internal, oid, integer) RETURNS bitmultivector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION bitmultivector_recv(internal, oid, integer) IS
	'binary input of bitmultivector (header format 2, ceil(D/8) bytes a row, zero padding bits)';

CREATE FUNCTION bitmultivector_send(bitmultivector) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION bitmultivector_send(bitmultivector) IS
	'binary output of bitmultivector (header format 2, ceil(D/8) bytes a row)';

-- STORAGE main: a value stays in the heap tuple while it fits (up to about
-- 8 kB: 500 rows of 128 bits), so scans of pooled or short pages skip TOAST;
-- larger ones go out of line (docs/multivector.md, "Storage").
CREATE TYPE bitmultivector (
	INPUT = bitmultivector_in,
	OUTPUT = bitmultivector_out,
	TYPMOD_IN = multivector_typmod_in,
	TYPMOD_OUT = multivector_typmod_out,
	RECEIVE = bitmultivector_recv,
	SEND = bitmultivector_send,
	INTERNALLENGTH = VARIABLE,
	ALIGNMENT = double,
	STORAGE = main
);
COMMENT ON TYPE bitmultivector IS
	'N x D matrix of sign bits (1 = positive), ceil(D/8) bytes a row; bitmultivector(D) fixes D';

-- Casts ----------------------------------------------------------------------

CREATE FUNCTION halfmultivector(halfmultivector, integer, boolean) RETURNS halfmultivector
	AS 'MODULE_PATHNAME', 'multivector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION halfmultivector(halfmultivector, integer, boolean) IS
	'length coercion: checks the dimension against the halfmultivector(D) type modifier';
CREATE CAST (halfmultivector AS halfmultivector)
	WITH FUNCTION halfmultivector(halfmultivector, integer, boolean) AS IMPLICIT;

CREATE FUNCTION bitmultivector(bitmultivector, integer, boolean) RETURNS bitmultivector
	AS 'MODULE_PATHNAME', 'multivector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION bitmultivector(bitmultivector, integer, boolean) IS
	'length coercion: checks the dimension against the bitmultivector(D) type modifier';
CREATE CAST (bitmultivector AS bitmultivector)
	WITH FUNCTION bitmultivector(bitmultivector, integer, boolean) AS IMPLICIT;

CREATE FUNCTION halfmultivector(multivector, integer, boolean) RETURNS halfmultivector
	AS 'MODULE_PATHNAME', 'multivector_to_halfmultivector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION halfmultivector(multivector, integer, boolean) IS
	'float32 to half: round to nearest even; an element beyond +-65504 is an error';
CREATE CAST (multivector AS halfmultivector)
	WITH FUNCTION halfmultivector(multivector, integer, boolean) AS ASSIGNMENT;

CREATE FUNCTION multivector(halfmultivector, integer, boolean) RETURNS multivector
	AS 'MODULE_PATHNAME', 'halfmultivector_to_multivector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multivector(halfmultivector, integer, boolean) IS
	'half to float32 (exact)';
CREATE CAST (halfmultivector AS multivector)
	WITH FUNCTION multivector(halfmultivector, integer, boolean) AS ASSIGNMENT;

CREATE FUNCTION bitmultivector(multivector, integer, boolean) RETURNS bitmultivector
	AS 'MODULE_PATHNAME', 'multivector_to_bitmultivector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION bitmultivector(multivector, integer, boolean) IS
	'the sign of each element: 1 for x >= 0 (zeros included), 0 for x < 0';
CREATE CAST (multivector AS bitmultivector)
	WITH FUNCTION bitmultivector(multivector, integer, boolean) AS ASSIGNMENT;

CREATE FUNCTION bitmultivector(halfmultivector, integer, boolean) RETURNS bitmultivector
	AS 'MODULE_PATHNAME', 'halfmultivector_to_bitmultivector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION bitmultivector(halfmultivector, integer, boolean) IS
	'the sign of each element: 1 for x >= 0 (zeros included), 0 for x < 0';
CREATE CAST (halfmultivector AS bitmultivector)
	WITH FUNCTION bitmultivector(halfmultivector, integer, boolean) AS ASSIGNMENT;

CREATE FUNCTION multivector(bitmultivector, integer, boolean) RETURNS multivector
	AS 'MODULE_PATHNAME', 'bitmultivector_to_multivector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION multivector(bitmultivector, integer, boolean) IS
	'bits to +1 (bit 1) and -1 (bit 0)';
CREATE CAST (bitmultivector AS multivector)
	WITH FUNCTION multivector(bitmultivector, integer, boolean) AS ASSIGNMENT;

CREATE FUNCTION halfmultivector(bitmultivector, integer, boolean) RETURNS halfmultivector
	AS 'MODULE_PATHNAME', 'bitmultivector_to_halfmultivector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION halfmultivector(bitmultivector, integer, boolean) IS
	'bits to +1 (bit 1) and -1 (bit 0)';
CREATE CAST (bitmultivector AS halfmultivector)
	WITH FUNCTION halfmultivector(bitmultivector, integer, boolean) AS ASSIGNMENT;

CREATE FUNCTION array_to_halfmultivector(real[], integer, boolean) RETURNS halfmultivector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION array_to_halfmultivector(real[], integer, boolean) IS
	'two-dimensional real[] to halfmultivector (round to nearest even)';
CREATE CAST (real[] AS halfmultivector)
	WITH FUNCTION array_to_halfmultivector(real[], integer, boolean) AS ASSIGNMENT;

CREATE FUNCTION array_to_bitmultivector(real[], integer, boolean) RETURNS bitmultivector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION array_to_bitmultivector(real[], integer, boolean) IS
	'two-dimensional real[] to bitmultivector (the sign of each element, zeros give 1)';
CREATE CAST (real[] AS bitmultivector)
	WITH FUNCTION array_to_bitmultivector(real[], integer, boolean) AS ASSIGNMENT;

CREATE FUNCTION halfmultivector_to_float4(halfmultivector, integer, boolean) RETURNS real[]
	AS 'MODULE_PATHNAME', 'halfmultivector_to_float4_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION halfmultivector_to_float4(halfmultivector, integer, boolean) IS
	'halfmultivector to a two-dimensional real[] (exact)';
CREATE CAST (halfmultivector AS real[])
	WITH FUNCTION halfmultivector_to_float4(halfmultivector, integer, boolean);

CREATE FUNCTION bitmultivector_to_float4(bitmultivector, integer, boolean) RETURNS real[]
	AS 'MODULE_PATHNAME', 'bitmultivector_to_float4_array' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION bitmultivector_to_float4(bitmultivector, integer, boolean) IS
	'bitmultivector to a two-dimensional real[] of +1 and -1';
CREATE CAST (bitmultivector AS real[])
	WITH FUNCTION bitmultivector_to_float4(bitmultivector, integer, boolean);

-- Functions ------------------------------------------------------------------

CREATE FUNCTION dims(halfmultivector) RETURNS integer
	AS 'MODULE_PATHNAME', 'multivector_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dims(halfmultivector) IS 'D, the number of dimensions of each row';
CREATE FUNCTION dims(bitmultivector) RETURNS integer
	AS 'MODULE_PATHNAME', 'multivector_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dims(bitmultivector) IS 'D, the number of dimensions (bits) of each row';
CREATE FUNCTION num_vectors(halfmultivector) RETURNS integer
	AS 'MODULE_PATHNAME', 'multivector_num_vectors' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION num_vectors(halfmultivector) IS 'N, the number of rows';
CREATE FUNCTION num_vectors(bitmultivector) RETURNS integer
	AS 'MODULE_PATHNAME', 'multivector_num_vectors' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION num_vectors(bitmultivector) IS 'N, the number of rows';

-- MaxSim: the document is the left operand, the query the right one, as for
-- multivector.  COST as multivector's maxsim for float32 work (half and
-- binary x float widen the document, then run the float kernel); binary x
-- binary is popcounts over a value 32 times smaller.
CREATE FUNCTION maxsim(halfmultivector, multivector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'maxsim_half_float' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 6000;
COMMENT ON FUNCTION maxsim(halfmultivector, multivector) IS
	'MaxSim of a half document and a float32 query (fp32 arithmetic on the stored values)';
CREATE FUNCTION maxsim(halfmultivector, halfmultivector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'maxsim_half_half' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 6000;
COMMENT ON FUNCTION maxsim(halfmultivector, halfmultivector) IS
	'MaxSim of a half document and a half query (fp32 arithmetic on the stored values)';
CREATE FUNCTION maxsim(bitmultivector, multivector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'maxsim_bit_float' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 4000;
COMMENT ON FUNCTION maxsim(bitmultivector, multivector) IS
	'MaxSim of a binary document and a float32 query: dot products q . (2b - 1)';
CREATE FUNCTION maxsim(bitmultivector, bitmultivector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'maxsim_bit_bit' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 500;
COMMENT ON FUNCTION maxsim(bitmultivector, bitmultivector) IS
	'MaxSim of binary document and query: sum over query rows of max (D - 2 hamming), the +-1 dot product';

CREATE FUNCTION halfmultivector_negative_maxsim(halfmultivector, multivector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'negative_maxsim_half_float' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 6000;
COMMENT ON FUNCTION halfmultivector_negative_maxsim(halfmultivector, multivector) IS
	'-maxsim(doc, query): the function behind <#>';
CREATE FUNCTION halfmultivector_negative_maxsim(halfmultivector, halfmultivector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'negative_maxsim_half_half' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 6000;
COMMENT ON FUNCTION halfmultivector_negative_maxsim(halfmultivector, halfmultivector) IS
	'-maxsim(doc, query): the function behind <#>';
CREATE FUNCTION bitmultivector_negative_maxsim(bitmultivector, multivector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'negative_maxsim_bit_float' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 4000;
COMMENT ON FUNCTION bitmultivector_negative_maxsim(bitmultivector, multivector) IS
	'-maxsim(doc, query): the function behind <#>';
CREATE FUNCTION bitmultivector_negative_maxsim(bitmultivector, bitmultivector) RETURNS double precision
	AS 'MODULE_PATHNAME', 'negative_maxsim_bit_bit' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 500;
COMMENT ON FUNCTION bitmultivector_negative_maxsim(bitmultivector, bitmultivector) IS
	'-maxsim(doc, query): the function behind <#>';

CREATE OPERATOR <#> (LEFTARG = halfmultivector, RIGHTARG = multivector,
	FUNCTION = halfmultivector_negative_maxsim);
COMMENT ON OPERATOR <#> (halfmultivector, multivector) IS
	'negative MaxSim, doc <#> query: ORDER BY doc <#> query gives the best first';
CREATE OPERATOR <#> (LEFTARG = halfmultivector, RIGHTARG = halfmultivector,
	FUNCTION = halfmultivector_negative_maxsim);
COMMENT ON OPERATOR <#> (halfmultivector, halfmultivector) IS
	'negative MaxSim, doc <#> query: ORDER BY doc <#> query gives the best first';
CREATE OPERATOR <#> (LEFTARG = bitmultivector, RIGHTARG = multivector,
	FUNCTION = bitmultivector_negative_maxsim);
COMMENT ON OPERATOR <#> (bitmultivector, multivector) IS
	'negative MaxSim, doc <#> query, q . (2b - 1): ORDER BY doc <#> query gives the best first';
CREATE OPERATOR <#> (LEFTARG = bitmultivector, RIGHTARG = bitmultivector,
	FUNCTION = bitmultivector_negative_maxsim);
COMMENT ON OPERATOR <#> (bitmultivector, bitmultivector) IS
	'negative hamming MaxSim, doc <#> query: ORDER BY doc <#> query gives the best first';

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
-- One transaction per batch.  A batch that fails is encoded again row by
-- row, each row in its own subtransaction: a row that fails on its own (an
-- undecodable, unsupported or oversized image; a constraint, trigger or
-- type error raised by its UPDATE) is reported in a WARNING that names its
-- key, keeps a NULL embedding and is not tried again in this run, and every
-- other row is embedded.  Errors of the run rather than of a row end it: no
-- model, cancel, a worker or I/O failure (SQLSTATE classes 53, 55, 57, 58,
-- XX and 42, 25, 28, 08), and any non-image error that every row of the
-- first batch gives while nothing has been embedded yet (a column of the
-- wrong dimension, say).  The batches committed before it are kept.
-- Progress is published in colpali_progress after every batch.

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
	err_state text;
	err_message text;
	batch_first_state text;
	batch_same_state boolean;
	ever_embedded boolean := false;
	report boolean := true;
BEGIN
	IF batch_size IS NULL OR batch_size < 1 THEN
		RAISE EXCEPTION 'batch_size must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s WHERE %I IS NULL AND %I IS NOT NULL',
							  tbl, embedding_column, image_column)
		INTO total;
	BEGIN
		PERFORM @extschema@.colpali_progress_report(tbl, 'encoding', total, 0, 0, batch_size);
	EXCEPTION WHEN out_of_memory THEN
		-- no spare shared memory for the progress table (not preloaded)
		RAISE NOTICE 'colpali_embed_images: progress is not shown in colpali_progress: %', SQLERRM;
		report := false;
	END;
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
		EXCEPTION WHEN OTHERS THEN
			IF left(SQLSTATE, 2) IN ('53', '55', '57', '58', 'XX', '42', '25', '28', '08') THEN
				RAISE;		-- the run's error, not a row's
			END IF;
			-- a row of the batch is bad: row by row, skipping the bad ones
			IF report THEN
				PERFORM @extschema@.colpali_progress_report(tbl, 'encoding row by row', total, done, failed, batch_size);
			END IF;
			n := 0;
			batch_first_state := NULL;
			batch_same_state := true;
			FOREACH tid_i IN ARRAY tids LOOP
				BEGIN
					EXECUTE pg_catalog.format(
						'UPDATE %1$s SET %3$I = @extschema@.colpali_image(%2$I) WHERE ctid OPERATOR(pg_catalog.=) $1',
						tbl, image_column, embedding_column)
						USING tid_i;
					n := n + 1;
				EXCEPTION WHEN OTHERS THEN
					err_state := SQLSTATE;
					err_message := SQLERRM;
					IF left(err_state, 2) IN ('53', '55', '57', '58', 'XX', '42', '25', '28', '08') THEN
						RAISE;
					END IF;
					batch_same_state := batch_same_state
						AND (batch_first_state IS NULL OR batch_first_state = err_state);
					batch_first_state := coalesce(batch_first_state, err_state);
					IF key_columns IS NULL THEN
						row_key := pg_catalog.format('ctid %s', tid_i);
					ELSE
						EXECUTE pg_catalog.format('SELECT pg_catalog.format(%L, ROW(%s)::text) FROM %s WHERE ctid OPERATOR(pg_catalog.=) $1',
												  'key (' || key_columns || ')=%s', key_columns, tbl)
							INTO row_key USING tid_i;
					END IF;
					RAISE WARNING 'colpali_embed_images: skipped the row with %: %', row_key, err_message;
					skipped := skipped OPERATOR(pg_catalog.||) tid_i;
					failed := failed + 1;
				END;
			END LOOP;
			-- every row of the first batch failed alike, and not for its
			-- image: the table or the setup is at fault, not a row
			IF NOT ever_embedded AND n = 0 AND batch_same_state
			   AND pg_catalog.array_length(tids, 1) > 1
			   AND batch_first_state NOT IN ('22P03', '0A000', '54000') THEN
				RAISE EXCEPTION 'colpali_embed_images: every row of the first batch failed: %', err_message
					USING ERRCODE = batch_first_state;
			END IF;
		END;
		done := done + n;
		ever_embedded := ever_embedded OR n > 0;
		IF report THEN
			PERFORM @extschema@.colpali_progress_report(tbl, 'encoding', total, done, failed, batch_size);
		END IF;
		RAISE NOTICE 'colpali_embed_images: % of % images embedded', done, total;
		COMMIT;
	END LOOP;
	IF report THEN
		PERFORM @extschema@.colpali_progress_end();
	END IF;
	IF failed > 0 THEN
		RAISE WARNING 'colpali_embed_images: % of % images could not be embedded', failed, total
			USING HINT = 'Their embeddings stay NULL; the warnings above name the rows.';
	END IF;
END
$colpali$;

COMMENT ON PROCEDURE colpali_embed_images(regclass, name, name, integer) IS
'fills embedding_column with colpali_image(image_column) for rows where it is NULL, batch_size rows per transaction, reporting progress as NOTICEs and in the colpali_progress view, and each row that cannot be embedded as a WARNING (its row keeps a NULL embedding); CALL it outside an explicit transaction block';

-- ===========================================================================
-- 52: progress of bulk encoding runs, watched from any session (src/progress.c)
-- ===========================================================================
-- A table of per-backend entries in shared memory, in the manner of
-- pg_stat_progress_create_index (PostgreSQL 15 has no progress command that
-- an extension could use).  colpali_embed_images and colpali-ingest report
-- after every batch; anyone may report their own session's run.

CREATE FUNCTION colpali_progress_report(tbl regclass, phase text,
	total bigint, done bigint, failed bigint, batch_size integer)
RETURNS void
AS 'MODULE_PATHNAME', 'colpali_progress_report'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION colpali_progress_report(regclass, text, bigint, bigint, bigint, integer) IS
'publishes this session''s bulk encoding run in colpali_progress (total NULL when unknown); the entry stays until colpali_progress_end(), the end of the session, or a failing transaction';

CREATE FUNCTION colpali_progress_end()
RETURNS void
AS 'MODULE_PATHNAME', 'colpali_progress_end'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION colpali_progress_end() IS
'removes this session''s entry from colpali_progress';

CREATE FUNCTION colpali_progress(
	OUT pid integer, OUT datid oid, OUT relid oid, OUT phase text,
	OUT batch_size integer, OUT images_total bigint, OUT images_done bigint,
	OUT images_failed bigint, OUT started timestamptz, OUT updated timestamptz)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'colpali_progress'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION colpali_progress() IS
'one row per session with a bulk encoding run in progress; other roles'' runs show only pid and datid unless the caller has pg_read_all_stats';

CREATE VIEW colpali_progress AS
SELECT p.pid, p.datid, d.datname, p.relid, p.phase, p.batch_size,
	   p.images_total, p.images_done, p.images_failed,
	   p.started, p.updated,
	   round((p.images_done / nullif(extract(epoch FROM p.updated - p.started), 0))::numeric, 3)
		   AS images_per_second,
	   CASE WHEN p.images_done > 0 AND p.images_total IS NOT NULL THEN
		   (p.updated - p.started) * (greatest(p.images_total - p.images_done - p.images_failed, 0)::double precision
									  / p.images_done)
	   END AS eta
FROM colpali_progress() p LEFT JOIN pg_catalog.pg_database d ON d.oid = p.datid;

COMMENT ON VIEW colpali_progress IS
'bulk encoding runs in progress (colpali_embed_images, colpali-ingest), one row per session, updated after every batch; eta assumes the rate so far';

GRANT SELECT ON colpali_progress TO PUBLIC;

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

-- ---------------------------------------------------------------------------
-- colpali_model_info (src/model_info.c): what the encoder computes
-- ---------------------------------------------------------------------------
CREATE FUNCTION colpali_model_info(
	OUT architecture text,
	OUT embedding_dim integer,
	OUT page_rows integer,
	OUT visual_tokens integer,
	OUT query_format text,
	OUT page_format text,
	OUT compute_precision text,
	OUT device text,
	OUT kernels text,
	OUT mode text)
	RETURNS record
	AS 'MODULE_PATHNAME', 'colpali_model_info'
	LANGUAGE C VOLATILE PARALLEL RESTRICTED;

COMMENT ON FUNCTION colpali_model_info() IS
'the configured model as the encoder sees it (loading it if needed): architecture from config.json (ColPali, ColQwen2, ColQwen2.5), output width, rows of a page embedding (every page for ColPali, at most at colpali.max_visual_tokens for ColQwen2) and its image rows, the query and page prompt formats (colpali.query_format, colpali.page_format), compute precision (fp32 or bf16), device and CPU kernels, and whether the worker or this backend answered';

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

-- ---------------------------------------------------------------------------
-- Retrieval quality in SQL: runs and trec_eval measures (docs/evaluation.md)
-- ---------------------------------------------------------------------------
-- A run is a table (query_id, page_id, score); qrels is a table (query_id,
-- page_id, relevance) as ViDoRe's qrels.  The measures are trec_eval's, as
-- pytrec_eval and ViDoRe's evaluation compute them: a query's run is ranked
-- by score descending, ties by page id (as text, byte order) descending;
-- nDCG@k has gain = relevance, discount log2(rank + 1) and the ideal DCG of
-- the query's qrels; recall@k and MRR@k count relevance >= 1 as relevant.
-- Queries that appear in both the run and qrels are averaged.

CREATE FUNCTION colpali_ir_metrics_by_query(run regclass, qrels regclass, k integer,
	OUT query_id text, OUT ndcg double precision, OUT recall double precision,
	OUT mrr double precision)
RETURNS SETOF record
LANGUAGE plpgsql STABLE
AS $colpali$
BEGIN
	IF k IS NULL OR k < 1 THEN
		RAISE EXCEPTION 'colpali_ir_metrics: k must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY EXECUTE pg_catalog.format($q$
		WITH rel AS (
			SELECT r.query_id::text AS q, r.page_id::text AS d,
				   pg_catalog.max(r.relevance::double precision) AS g
			FROM %2$s r GROUP BY 1, 2),
		ranked AS (
			SELECT x.q, x.d, pg_catalog.row_number() OVER (PARTITION BY x.q
					ORDER BY x.s DESC, x.d COLLATE "C" DESC) AS rk
			FROM (SELECT t.query_id::text AS q, t.page_id::text AS d,
						 t.score::double precision AS s
				  FROM %1$s t) x
			WHERE x.q IN (SELECT rel.q FROM rel)),
		top AS (
			SELECT ranked.q, ranked.rk, COALESCE(rel.g, 0) AS g
			FROM ranked LEFT JOIN rel USING (q, d)
			WHERE ranked.rk <= $1),
		ideal AS (
			SELECT rel.q, rel.g, pg_catalog.row_number() OVER (PARTITION BY rel.q
					ORDER BY rel.g DESC) AS rk
			FROM rel WHERE rel.g > 0),
		per_query AS (
			SELECT q,
				(SELECT COALESCE(pg_catalog.sum(top.g / (pg_catalog.ln((top.rk + 1)::float8) / pg_catalog.ln(2.0::float8))), 0)
				 FROM top WHERE top.q = qs.q AND top.g > 0) AS dcg,
				(SELECT COALESCE(pg_catalog.sum(ideal.g / (pg_catalog.ln((ideal.rk + 1)::float8) / pg_catalog.ln(2.0::float8))), 0)
				 FROM ideal WHERE ideal.q = qs.q AND ideal.rk <= $1) AS idcg,
				(SELECT pg_catalog.count(*) FROM top WHERE top.q = qs.q AND top.g >= 1) AS hits,
				(SELECT pg_catalog.count(*) FROM rel WHERE rel.q = qs.q AND rel.g >= 1) AS nrel,
				(SELECT pg_catalog.min(top.rk) FROM top WHERE top.q = qs.q AND top.g >= 1) AS first
			FROM (SELECT DISTINCT ranked.q FROM ranked) qs)
		SELECT q,
			CASE WHEN idcg > 0 THEN dcg / idcg ELSE 0 END,
			CASE WHEN nrel > 0 THEN hits::float8 / nrel ELSE 0 END,
			CASE WHEN first IS NOT NULL THEN 1.0::float8 / first ELSE 0 END
		FROM per_query ORDER BY q COLLATE "C"
		$q$, run, qrels) USING k;
END
$colpali$;

COMMENT ON FUNCTION colpali_ir_metrics_by_query(regclass, regclass, integer) IS
'trec_eval''s nDCG@k (ndcg_cut_k), recall@k (recall_k) and MRR@k (recip_rank of the run cut at k) of each query, for a run table (query_id, page_id, score) and a qrels table (query_id, page_id, relevance); ties in score are ranked by page id as text descending, as trec_eval does';

CREATE FUNCTION colpali_ir_metrics(run regclass, qrels regclass, k integer,
	OUT queries bigint, OUT ndcg double precision, OUT recall double precision,
	OUT mrr double precision)
RETURNS record
LANGUAGE sql STABLE
AS $colpali$
	SELECT pg_catalog.count(*), pg_catalog.avg(m.ndcg), pg_catalog.avg(m.recall), pg_catalog.avg(m.mrr)
	FROM colpali_ir_metrics_by_query(run, qrels, k) m
$colpali$;

COMMENT ON FUNCTION colpali_ir_metrics(regclass, regclass, integer) IS
'mean nDCG@k, recall@k and MRR@k over the queries present in both the run and qrels (see colpali_ir_metrics_by_query)';

CREATE FUNCTION colpali_retrieve(corpus regclass, queries regclass, k integer,
	method text DEFAULT 'exact',
	corpus_id_column name DEFAULT 'id', corpus_embedding_column name DEFAULT 'emb',
	query_id_column name DEFAULT 'id', query_embedding_column name DEFAULT 'emb',
	OUT query_id text, OUT page_id text, OUT score double precision,
	OUT rank integer)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE
AS $colpali$
DECLARE
	has_index boolean;
	old_seqscan text;
	old_sort text;
BEGIN
	IF k IS NULL OR k < 1 THEN
		RAISE EXCEPTION 'colpali_retrieve: k must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF method IS NULL OR method NOT IN ('exact', 'index') THEN
		RAISE EXCEPTION 'colpali_retrieve: method must be ''exact'' or ''index'', not %',
			pg_catalog.quote_nullable(method)
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF method = 'exact' THEN
		-- every page scored by maxsim(); the top k in trec_eval's order
		RETURN QUERY EXECUTE pg_catalog.format($q$
			SELECT qq.%3$I::text, d.pid, d.s, d.rk::integer
			FROM %2$s qq CROSS JOIN LATERAL (
				SELECT x.pid, x.s, pg_catalog.row_number() OVER (ORDER BY x.s DESC, x.pid COLLATE "C" DESC) AS rk
				FROM (SELECT c.%5$I::text AS pid, maxsim(c.%6$I, qq.%4$I) AS s
					  FROM %1$s c WHERE c.%6$I IS NOT NULL) x
				ORDER BY x.s DESC, x.pid COLLATE "C" DESC
				LIMIT $1) d
			WHERE qq.%4$I IS NOT NULL
			ORDER BY 1, 4
			$q$, corpus, queries, query_id_column, query_embedding_column, corpus_id_column, corpus_embedding_column) USING k;
		RETURN;
	END IF;
	-- method 'index': ORDER BY <#> LIMIT k through the corpus's mvivf index
	SELECT EXISTS (
		SELECT FROM pg_catalog.pg_index i
			JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
			JOIN pg_catalog.pg_am am ON am.oid = ic.relam
			JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid
				AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey::int2[])
		WHERE i.indrelid OPERATOR(pg_catalog.=) corpus AND am.amname OPERATOR(pg_catalog.=) 'mvivf'
			AND a.attname OPERATOR(pg_catalog.=) corpus_embedding_column AND i.indisvalid)
		INTO has_index;
	IF NOT has_index THEN
		RAISE EXCEPTION 'colpali_retrieve: % has no valid mvivf index on column %', corpus, corpus_embedding_column
			USING ERRCODE = 'undefined_object',
				  HINT = pg_catalog.format('CREATE INDEX ON %s USING mvivf (%I);', corpus, corpus_embedding_column);
	END IF;
	-- the index, not a sequential scan and a sort; the settings are put back
	-- before returning (an error rolls them back with the transaction)
	old_seqscan := pg_catalog.current_setting('enable_seqscan');
	old_sort := pg_catalog.current_setting('enable_sort');
	PERFORM pg_catalog.set_config('enable_seqscan', 'off', true),
			pg_catalog.set_config('enable_sort', 'off', true);
	RETURN QUERY EXECUTE pg_catalog.format($q$
		SELECT qq.%3$I::text, d.pid, d.s, d.rk::integer
		FROM %2$s qq CROSS JOIN LATERAL (
			SELECT y.pid, y.s, pg_catalog.row_number() OVER (ORDER BY y.s DESC, y.pid COLLATE "C" DESC) AS rk
			FROM (SELECT c.%5$I::text AS pid, maxsim(c.%6$I, qq.%4$I) AS s
				  FROM %1$s c
				  ORDER BY c.%6$I <#> qq.%4$I
				  LIMIT $1) y) d
		WHERE qq.%4$I IS NOT NULL
		ORDER BY 1, 4
		$q$, corpus, queries, query_id_column, query_embedding_column, corpus_id_column, corpus_embedding_column) USING k;
	PERFORM pg_catalog.set_config('enable_seqscan', old_seqscan, true),
			pg_catalog.set_config('enable_sort', old_sort, true);
END
$colpali$;

COMMENT ON FUNCTION colpali_retrieve(regclass, regclass, integer, text, name, name, name, name) IS
'a run: for each query (columns query_id_column, query_embedding_column of table queries), the k best pages (corpus_id_column, corpus_embedding_column of table corpus) with their MaxSim score and rank; method ''exact'' scores every page, ''index'' asks the corpus''s mvivf index (ORDER BY <#> LIMIT k, under the current mvivf settings)';

CREATE FUNCTION colpali_evaluate(corpus regclass, queries regclass, qrels regclass,
	k integer DEFAULT 5, method text DEFAULT 'exact',
	corpus_id_column name DEFAULT 'id', corpus_embedding_column name DEFAULT 'emb',
	query_id_column name DEFAULT 'id', query_embedding_column name DEFAULT 'emb',
	OUT queries_evaluated bigint, OUT ndcg double precision,
	OUT recall double precision, OUT mrr double precision)
RETURNS record
LANGUAGE plpgsql VOLATILE
AS $colpali$
BEGIN
	IF pg_catalog.to_regclass('pg_temp.colpali_evaluate_run') IS NOT NULL THEN
		DROP TABLE pg_temp.colpali_evaluate_run;
	END IF;
	CREATE TEMP TABLE colpali_evaluate_run AS
		SELECT * FROM colpali_retrieve(corpus, queries, k, method, corpus_id_column,
									   corpus_embedding_column, query_id_column, query_embedding_column);
	SELECT * INTO queries_evaluated, ndcg, recall, mrr
	FROM colpali_ir_metrics('pg_temp.colpali_evaluate_run'::regclass, qrels, k);
	DROP TABLE pg_temp.colpali_evaluate_run;
END
$colpali$;

COMMENT ON FUNCTION colpali_evaluate(regclass, regclass, regclass, integer, text, name, name, name, name) IS
'retrieval quality of a corpus of page multivectors for a table of query multivectors and a qrels table (query_id, page_id, relevance): mean nDCG@k, recall@k and MRR@k (trec_eval definitions), by the exact scan or the mvivf index';

-- ===========================================================================
-- 70: token pooling (src/pool.c, src/engine/token_pool.c; docs/pooling.md)
-- ===========================================================================
-- Hierarchical token pooling as colpali-engine's HierarchicalTokenPooler does
-- it: Ward clustering of a page's rows into at most max(N / factor, 1)
-- clusters, each replaced by its L2-normalised mean.  The image encoders
-- take a pool_factor argument, or apply the colpali.pool_factor setting.

CREATE FUNCTION colpali_pool(multivector, factor integer) RETURNS multivector
	AS 'MODULE_PATHNAME', 'colpali_pool'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE COST 100000;

COMMENT ON FUNCTION colpali_pool(multivector, integer) IS
'hierarchical token pooling (colpali-engine''s HierarchicalTokenPooler): at most max(N / factor, 1) rows, each the L2-normalised mean of a Ward cluster of rows; factor 1 returns the input; at most 2048 rows';

CREATE FUNCTION colpali_image(bytea, pool_factor integer) RETURNS multivector
	AS 'MODULE_PATHNAME', 'colpali_image_pooled'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 1000000;

COMMENT ON FUNCTION colpali_image(bytea, integer) IS
'embeds a page image like colpali_image(bytea) and pools its rows with colpali_pool(..., pool_factor); colpali.pool_factor is ignored';

CREATE FUNCTION colpali_images(bytea[], pool_factor integer) RETURNS multivector[]
	AS 'MODULE_PATHNAME', 'colpali_images_pooled'
	LANGUAGE C STABLE STRICT PARALLEL SAFE COST 1000000;

COMMENT ON FUNCTION colpali_images(bytea[], integer) IS
'embeds many page images like colpali_images(bytea[]) and pools each with colpali_pool(..., pool_factor); colpali.pool_factor is ignored';
