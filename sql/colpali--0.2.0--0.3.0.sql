/* colpali 0.2.0 -> 0.3.0 upgrade script */
\echo Use "ALTER EXTENSION colpali UPDATE TO '0.3.0'" to load this file. \quit

-- Every object added or changed in sql/sections/ since 0.2.0 is created or
-- altered here too, in one commented block per change; TAP test
-- test/t/040_upgrade.pl checks that an updated installation has exactly the
-- objects of a fresh one.

-- ---------------------------------------------------------------------------
-- Token pooling (sql/sections/70_pool.sql, repeated here verbatim).
-- ---------------------------------------------------------------------------
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
