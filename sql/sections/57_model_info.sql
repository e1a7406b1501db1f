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
