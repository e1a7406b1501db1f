-- ===========================================================================
-- 45: mvivf over compact columns: operator classes for halfmultivector and
--     bitmultivector (src/index/mvutils.c reads their rows as float for the
--     quantizer; the rerank calls the operator's own function, so the index
--     returns the exact <#> of what is stored); reference: docs/mvivf.md,
--     "Compact columns"
-- ===========================================================================

-- One operator family per column type, with every query type the column has
-- a <#> for: the float query is what colpali_query() returns and what users
-- order by; the compact query (half x half, binary x binary hamming) costs
-- nothing more to support, since the exact rerank is the operator itself,
-- and saves a second index for users who keep their queries compact.
CREATE OPERATOR CLASS halfmultivector_maxsim_ops
	DEFAULT FOR TYPE halfmultivector USING mvivf AS
	OPERATOR 1 <#> (halfmultivector, multivector) FOR ORDER BY pg_catalog.float_ops,
	OPERATOR 1 <#> (halfmultivector, halfmultivector) FOR ORDER BY pg_catalog.float_ops;
COMMENT ON OPERATOR CLASS halfmultivector_maxsim_ops USING mvivf IS
	'orders half documents by negative MaxSim (<#>) against a float32 or half query';
COMMENT ON OPERATOR FAMILY halfmultivector_maxsim_ops USING mvivf IS
	'operator family of halfmultivector_maxsim_ops';

CREATE OPERATOR CLASS bitmultivector_maxsim_ops
	DEFAULT FOR TYPE bitmultivector USING mvivf AS
	OPERATOR 1 <#> (bitmultivector, multivector) FOR ORDER BY pg_catalog.float_ops,
	OPERATOR 1 <#> (bitmultivector, bitmultivector) FOR ORDER BY pg_catalog.float_ops;
COMMENT ON OPERATOR CLASS bitmultivector_maxsim_ops USING mvivf IS
	'orders binary documents by negative MaxSim (<#>) against a float32 query (q . (2b - 1)) or a binary one (hamming)';
COMMENT ON OPERATOR FAMILY bitmultivector_maxsim_ops USING mvivf IS
	'operator family of bitmultivector_maxsim_ops';
