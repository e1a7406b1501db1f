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
