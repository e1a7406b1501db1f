-- Encoder functions and settings without a model: clear errors, errcodes
-- and hints; path checks; argument checks that happen before any model is
-- loaded.  (Encoding itself is tested by TAP tests, which know the absolute
-- path of the fixture checkpoints.)

-- SQLSTATE of a statement, or 'ok'
CREATE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;

SET colpali.model_path = '';

-- no model configured: 55000 with a hint
SELECT colpali_query('what is the revenue in 2023?');
SELECT colpali_image('\x89504e470d0a1a0a'::bytea);
SELECT pg_temp.sqlstate_of($$SELECT colpali_query('x')$$);
SELECT pg_temp.sqlstate_of($$SELECT colpali_image('\x01'::bytea)$$);
SELECT pg_temp.sqlstate_of($$SELECT colpali_images(ARRAY['\x01'::bytea])$$);

-- STRICT: NULL in, NULL out, no model needed
SELECT colpali_query(NULL) IS NULL AS query_null, colpali_image(NULL) IS NULL AS image_null;

-- input checks come before the model: empty image, over-long query
SELECT colpali_image(''::bytea);
SELECT pg_temp.sqlstate_of($$SELECT colpali_image(''::bytea)$$);
SELECT colpali_query(repeat('long query ', 7000));
SELECT pg_temp.sqlstate_of($$SELECT colpali_query(repeat('x', 65537))$$);

-- bulk form: empty and all-NULL arrays need no model; bad shapes are rejected
SELECT colpali_images('{}'::bytea[]);
SELECT colpali_images(ARRAY[NULL, NULL]::bytea[]);
SELECT colpali_images(ARRAY[''::bytea]);
SELECT colpali_images(ARRAY[['\x01'::bytea], ['\x02'::bytea]]);

-- bulk procedure: argument checks, nothing to do, no model
\set SHOW_CONTEXT never
CREATE TABLE encoder_docs (png bytea, emb multivector);
CALL colpali_embed_images('encoder_docs', 'png', 'emb', 0);
CALL colpali_embed_images('encoder_docs', 'png', 'emb');
INSERT INTO encoder_docs VALUES (NULL, NULL);
CALL colpali_embed_images('encoder_docs', 'png', 'emb');
INSERT INTO encoder_docs VALUES ('\x89504e470d0a1a0a', NULL);
CALL colpali_embed_images('encoder_docs', 'png', 'emb');
CALL colpali_embed_images('encoder_docs', 'no_such_column', 'emb');
DROP TABLE encoder_docs;
\set SHOW_CONTEXT errors

-- model paths: absolute, no "..", canonicalised
SET colpali.model_path = 'models/colpali';
SET colpali.model_path = '/srv/models/../../etc';
SET colpali.model_path = '/srv/models/..';
SET colpali.base_model_path = '../base';
SET colpali.model_path = '/srv//models/./colpali-v1.3-hf/';
SHOW colpali.model_path;
SET colpali.model_path = '/srv/models/..colpali';
SHOW colpali.model_path;
SELECT pg_temp.sqlstate_of(format('SET colpali.model_path = %L', '/' || repeat('a', 1100)));

-- a configured but missing checkpoint: undefined_file
SET colpali.model_path = '/nonexistent/colpali/checkpoint';
SELECT pg_temp.sqlstate_of($$SELECT colpali_query('x')$$);
RESET colpali.model_path;

-- other settings
SELECT pg_temp.sqlstate_of($$SET colpali.max_image_pixels = -1$$);
SET colpali.max_image_pixels = 1000000;
SHOW colpali.max_image_pixels;
RESET colpali.max_image_pixels;
SELECT pg_temp.sqlstate_of($$SET colpali.threads = 100000$$);
SELECT pg_temp.sqlstate_of($$SET colpali.device = 'tpu'$$);
SET colpali.no_such_setting = 1;

-- ordinary users: cannot set or read the model path, see no path in stats
CREATE ROLE colpali_encoder_user;
SET colpali.model_path = '/srv/models/colpali';
SET ROLE colpali_encoder_user;
SET colpali.model_path = '/tmp/evil';
SET colpali.base_model_path = '/tmp/evil';
SET colpali.max_image_pixels = 0;
SET colpali.use_worker = off;
-- (its message reads differently from PostgreSQL 16 on; the code is the same)
SELECT pg_temp.sqlstate_of('SHOW colpali.model_path') AS show_model_path;
SELECT count(*) AS rows, bool_and(model IS NULL) AS path_hidden FROM colpali_stats();
SELECT count(*) AS rows, bool_and(model IS NULL) AS path_hidden FROM colpali_stats;
RESET ROLE;
RESET colpali.model_path;
DROP ROLE colpali_encoder_user;

-- function attributes
SELECT p.proname, p.provolatile, p.proparallel, p.proisstrict, p.procost
FROM pg_proc p
WHERE p.proname IN ('colpali_query', 'colpali_image', 'colpali_images')
ORDER BY p.proname;
