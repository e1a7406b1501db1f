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
