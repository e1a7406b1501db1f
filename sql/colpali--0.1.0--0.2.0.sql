/* colpali 0.1.0 -> 0.2.0 upgrade script */
\echo Use "ALTER EXTENSION colpali UPDATE TO '0.2.0'" to load this file. \quit

