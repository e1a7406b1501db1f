/* colpali 0.3.0 -> 0.4.0 upgrade script */
\echo Use "ALTER EXTENSION colpali UPDATE TO '0.4.0'" to load this file. \quit

-- Every object added or changed in sql/sections/ since 0.3.0 is created or
-- altered here too, in one commented block per change; TAP test
-- test/t/040_upgrade.pl checks that an updated installation has exactly the
-- objects of a fresh one.
