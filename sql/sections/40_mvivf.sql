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
