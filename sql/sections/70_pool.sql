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
