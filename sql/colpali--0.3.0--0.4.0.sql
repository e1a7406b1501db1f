/* colpali 0.3.0 -> 0.4.0 upgrade script */
\echo Use "ALTER EXTENSION colpali UPDATE TO '0.4.0'" to load this file. \quit

-- Every object added or changed in sql/sections/ since 0.3.0 is created or
-- altered here too, in one commented block per change; TAP test
-- test/t/040_upgrade.pl checks that an updated installation has exactly the
-- objects of a fresh one.

-- ---------------------------------------------------------------------------
-- mvivf over compact columns (sql/sections/45_mvivf_compact.sql): operator
-- classes for halfmultivector and bitmultivector.
-- ---------------------------------------------------------------------------
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
