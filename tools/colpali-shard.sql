-- colpali-shard.sql: helpers for a sharded colpali table on the coordinator
-- (docs/scale-out.md).  Loaded by tools/colpali-shard-setup; not part of the
-- extension, so shards need none of it.  Needs colpali, postgres_fdw and
-- dblink on the coordinator.
--
--   colpali_shard.create_sharded_table(table, columns, key, shards[])
--       partitioned table on the coordinator, hash-partitioned on key into
--       one postgres_fdw foreign table per shard connection string; creates
--       the extension and the table on each shard.
--   colpali_shard.create_index(table, with_options)
--       CREATE INDEX ... USING mvivf on every shard (after loading).
--   colpali_shard.topk(table, query, k, filter)
--       exact merge of every shard's indexed ORDER BY emb <#> q LIMIT k,
--       sent to all shards at once; only (key, distance) travels back.

CREATE SCHEMA IF NOT EXISTS colpali_shard;

-- Schema of an installed extension, quoted, for OPERATOR(schema.<#>) and
-- casts in SQL sent to shards (postgres_fdw assumes the same schema there).
CREATE OR REPLACE FUNCTION colpali_shard.extension_schema(ext name)
RETURNS text LANGUAGE sql STABLE AS $$
	SELECT quote_ident(n.nspname) FROM pg_extension e
	JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = ext
$$;

-- Splits a libpq key=value connection string into the options of a foreign
-- server and those of a user mapping (user, password).  Values may be quoted
-- with single quotes; backslash escapes are not supported.
CREATE OR REPLACE FUNCTION colpali_shard.conninfo_options(conninfo text, OUT server_opts text,
	OUT mapping_opts text)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	m text[];
	kv text;
BEGIN
	server_opts := '';
	mapping_opts := '';
	FOR m IN SELECT regexp_matches(conninfo, $re$(\w+)\s*=\s*('[^']*'|\S+)$re$, 'g') LOOP
		kv := format('%I %L', m[1], CASE WHEN m[2] LIKE '''%' THEN substr(m[2], 2, length(m[2]) - 2) ELSE m[2] END);
		IF m[1] IN ('user', 'password') THEN
			mapping_opts := mapping_opts || CASE WHEN mapping_opts = '' THEN '' ELSE ', ' END || kv;
		ELSE
			server_opts := server_opts || CASE WHEN server_opts = '' THEN '' ELSE ', ' END || kv;
		END IF;
	END LOOP;
END
$$;

-- Creates table_name (columns) PARTITION BY HASH (key_column) on the
-- coordinator and, for shard i of n, a foreign server <prefix>_<i>, a user
-- mapping for the current user, the table (with its primary key) on the shard
-- and the foreign partition <table>_s<i> FOR VALUES WITH (MODULUS n,
-- REMAINDER i).  The servers list colpali in `extensions` (so <#> and
-- multivector constants ship with ORDER BY and WHERE), are async_capable,
-- and (unless the connection string has its own options=) set
-- cursor_tuple_fraction on their shard sessions.
CREATE OR REPLACE FUNCTION colpali_shard.create_sharded_table(table_name text, columns text,
	key_column text, shards text[], server_prefix text DEFAULT 'colpali_shard',
	fetch_size integer DEFAULT 10, remote_cursor_fraction float8 DEFAULT 0.001)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	n int := cardinality(shards);
	srv text;
	opts record;
	conn text;
BEGIN
	IF n IS NULL OR n < 1 THEN
		RAISE EXCEPTION 'colpali_shard: no shard connection strings given'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	EXECUTE format('CREATE TABLE %I (%s) PARTITION BY HASH (%I)', table_name, columns, key_column);
	FOR i IN 0 .. n - 1 LOOP
		srv := server_prefix || '_' || i;
		opts := colpali_shard.conninfo_options(shards[i + 1]);
		-- postgres_fdw reads a partition through a cursor without LIMIT; the
		-- shard plans it for cursor_tuple_fraction of its rows, and mvivf
		-- refuses the index when that is more than one scan may rerank
		-- (mvivf.max_scan_docs), i.e. from 200,000 pages per shard at the
		-- defaults.  A small fraction keeps the index (docs/scale-out.md).
		IF opts.server_opts !~ '(^|, )"?options"? ' THEN
			opts.server_opts := opts.server_opts || CASE WHEN opts.server_opts = '' THEN '' ELSE ', ' END ||
				format('options %L', '-c cursor_tuple_fraction=' || remote_cursor_fraction);
		END IF;
		EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER postgres_fdw OPTIONS (%s%s'
					   'extensions %L, async_capable %L, fetch_size %L)',
					   srv, opts.server_opts, CASE WHEN opts.server_opts = '' THEN '' ELSE ', ' END,
					   'colpali', 'true', fetch_size::text);
		EXECUTE format('CREATE USER MAPPING IF NOT EXISTS FOR CURRENT_USER SERVER %I%s', srv,
					   CASE WHEN opts.mapping_opts = '' THEN ''
					   ELSE ' OPTIONS (' || opts.mapping_opts || ')' END);
		conn := 'colpali_shard_setup_' || srv;
		PERFORM dblink_connect(conn, srv);
		PERFORM dblink_exec(conn, 'CREATE EXTENSION IF NOT EXISTS colpali');
		PERFORM dblink_exec(conn, format('CREATE TABLE IF NOT EXISTS %I (%s, PRIMARY KEY (%I))',
										 table_name, columns, key_column));
		PERFORM dblink_disconnect(conn);
		EXECUTE format('CREATE FOREIGN TABLE %I PARTITION OF %I FOR VALUES WITH (MODULUS %s, REMAINDER %s) '
					   'SERVER %I OPTIONS (table_name %L)',
					   table_name || '_s' || i, table_name, n, i, srv, table_name);
	END LOOP;
END
$$;

-- The foreign partitions of a partitioned table: partition, server, and the
-- quoted remote schema.table (postgres_fdw's schema_name / table_name
-- options, defaulting to the foreign table's own names).
CREATE OR REPLACE FUNCTION colpali_shard.partitions(parent regclass)
RETURNS TABLE (part regclass, server name, remote text) LANGUAGE sql STABLE AS $$
	SELECT c.oid::regclass, s.srvname,
		   quote_ident(coalesce((SELECT substr(o, 13) FROM unnest(ft.ftoptions) o WHERE o LIKE 'schema_name=%'),
								n.nspname)) || '.' ||
		   quote_ident(coalesce((SELECT substr(o, 12) FROM unnest(ft.ftoptions) o WHERE o LIKE 'table_name=%'),
								c.relname))
	FROM pg_inherits i
	JOIN pg_class c ON c.oid = i.inhrelid
	JOIN pg_namespace n ON n.oid = c.relnamespace
	JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
	JOIN pg_foreign_server s ON s.oid = ft.ftserver
	WHERE i.inhparent = parent
	ORDER BY c.relname
$$;

-- CREATE INDEX <remote>_emb_idx ON <remote> USING mvivf (emb_column) WITH
-- (with_options) on every shard (build the index after loading: the
-- centroids are trained on the rows present).
CREATE OR REPLACE FUNCTION colpali_shard.create_index(parent regclass, with_options text DEFAULT NULL,
	emb_column name DEFAULT 'emb')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	p record;
	conn text;
BEGIN
	FOR p IN SELECT * FROM colpali_shard.partitions(parent) LOOP
		conn := 'colpali_shard_index_' || p.server;
		PERFORM dblink_connect(conn, p.server);
		PERFORM dblink_exec(conn, format('CREATE INDEX ON %s USING mvivf (%I)%s', p.remote, emb_column,
										 coalesce(' WITH (' || with_options || ')', '')));
		PERFORM dblink_exec(conn, format('ANALYZE %s', p.remote));
		PERFORM dblink_disconnect(conn);
	END LOOP;
END
$$;

-- Top k of ORDER BY emb <#> query over all shards of a partitioned table.
-- Every shard gets, at once (dblink_send_query), the query
--   SELECT key, emb <#> 'query' FROM remote [WHERE filter] ORDER BY 2 LIMIT k
-- which its mvivf index answers; the coordinator merges the k x shards
-- (key, distance) pairs by (distance, key).  The result is the top k of one
-- node holding all rows whenever each shard's index returns its exact top k.
-- filter is SQL on the remote table's columns, run on the shards with the
-- user mapping's role (it is the caller's own query text: never build it from
-- untrusted input).  Connections stay open for the session (dblink names
-- colpali_shard_<server>) so later calls skip the connection setup.
CREATE OR REPLACE FUNCTION colpali_shard.topk(parent regclass, query multivector, k integer,
	filter text DEFAULT NULL, key_column name DEFAULT 'id', emb_column name DEFAULT 'emb')
RETURNS TABLE (key bigint, distance double precision, server name)
LANGUAGE plpgsql AS $$
DECLARE
	ext text := colpali_shard.extension_schema('colpali');
	p record;
	conn text;
	conns text[] := '{}';
	servers name[] := '{}';
	sql text;
	keys bigint[] := '{}';
	dists float8[] := '{}';
	srvs name[] := '{}';
	r record;
BEGIN
	IF k IS NULL OR k < 1 THEN
		RAISE EXCEPTION 'colpali_shard.topk: k must be at least 1' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	sql := format('SELECT %I::bigint, %I OPERATOR(%s.<#>) %L::%s.multivector FROM %%s%s ORDER BY 2 LIMIT %s',
				  key_column, emb_column, ext, query::text, ext,
				  coalesce(' WHERE (' || filter || ')', ''), k);
	BEGIN
		FOR p IN SELECT * FROM colpali_shard.partitions(parent) LOOP
			conn := 'colpali_shard_' || p.server;
			IF dblink_get_connections() IS NULL OR NOT conn = ANY (dblink_get_connections()) THEN
				PERFORM dblink_connect(conn, p.server);
				-- distances must come back bit-exact whatever the shard's setting
				PERFORM dblink_exec(conn, 'SET extra_float_digits = 3');
			END IF;
			conns := conns || conn;
			servers := servers || p.server;
			IF dblink_send_query(conn, format(sql, p.remote)) <> 1 THEN
				RAISE EXCEPTION 'colpali_shard.topk: could not send the query to %: %', p.server,
					dblink_error_message(conn) USING ERRCODE = 'connection_failure';
			END IF;
		END LOOP;
		FOR i IN 1 .. cardinality(conns) LOOP
			FOR r IN SELECT * FROM dblink_get_result(conns[i]) AS t(key bigint, distance float8) LOOP
				keys := keys || r.key;
				dists := dists || r.distance;
				srvs := srvs || servers[i];
			END LOOP;
			-- the empty result that ends the command, so the connection is reusable
			PERFORM * FROM dblink_get_result(conns[i]) AS t(key bigint, distance float8);
		END LOOP;
		IF cardinality(conns) = 0 THEN
			RAISE EXCEPTION 'colpali_shard.topk: % has no foreign partitions', parent
				USING ERRCODE = 'wrong_object_type';
		END IF;
	EXCEPTION WHEN OTHERS THEN
		-- a shard failed (down, missing operator, bad filter): drop this
		-- call's connections so no half-read result is left behind, then
		-- report the original error
		FOR i IN 1 .. cardinality(conns) LOOP
			BEGIN
				PERFORM dblink_disconnect(conns[i]);
			EXCEPTION WHEN OTHERS THEN
				NULL;
			END;
		END LOOP;
		RAISE;
	END;
	RETURN QUERY SELECT u.key, u.distance, u.server FROM unnest(keys, dists, srvs) AS u(key, distance, server)
		ORDER BY u.distance, u.key LIMIT k;
END
$$;
