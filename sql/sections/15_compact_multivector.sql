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
