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
