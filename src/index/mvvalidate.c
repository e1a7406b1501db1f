/*
 * mvvalidate.c
 *	  Operator class validation for mvivf (amvalidate).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_amop.h"
#include "catalog/pg_amproc.h"
#include "catalog/pg_opclass.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/regproc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "mvivf.h"

/*
 * mvivfvalidate
 *		An mvivf operator family has ordering operators only: operator 1,
 *		returning a float, one per query type (a halfmultivector or
 *		bitmultivector column is ordered against a float or a compact query
 *		by one index: the scan reranks with the operator's own function),
 *		and no support functions.
 */
bool
mvivfvalidate(Oid opclassoid)
{
	bool		result = true;
	HeapTuple	classtup;
	Form_pg_opclass classform;
	Oid			opfamilyoid;
	char	   *opclassname;
	CatCList   *oprlist;
	CatCList   *proclist;
	int			i;
	int			nordering = 0;

	classtup = SearchSysCache1(CLAOID, ObjectIdGetDatum(opclassoid));
	if (!HeapTupleIsValid(classtup))
		elog(ERROR, "cache lookup failed for operator class %u", opclassoid);
	classform = (Form_pg_opclass) GETSTRUCT(classtup);
	opfamilyoid = classform->opcfamily;
	opclassname = NameStr(classform->opcname);

	oprlist = SearchSysCacheList1(AMOPSTRATEGY, ObjectIdGetDatum(opfamilyoid));
	proclist = SearchSysCacheList1(AMPROCNUM, ObjectIdGetDatum(opfamilyoid));

	for (i = 0; i < oprlist->n_members; i++)
	{
		Form_pg_amop oprform = (Form_pg_amop) GETSTRUCT(&oprlist->members[i]->tuple);
		Oid			rettype = get_op_rettype(oprform->amopopr);

		if (oprform->amopstrategy != 1 || oprform->amoppurpose != AMOP_ORDER ||
			(rettype != FLOAT8OID && rettype != FLOAT4OID))
		{
			ereport(INFO,
					(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("mvivf operator class \"%s\" contains invalid operator %s",
							opclassname, format_operator(oprform->amopopr)),
					 errdetail("Only strategy 1, an ordering operator returning a float, is supported.")));
			result = false;
		}
		else
			nordering++;
	}
	if (proclist->n_members > 0)
	{
		ereport(INFO,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("mvivf operator class \"%s\" has support functions, which mvivf does not use",
						opclassname)));
		result = false;
	}
	if (nordering < 1)
	{
		ereport(INFO,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("mvivf operator class \"%s\" needs an ordering operator",
						opclassname)));
		result = false;
	}
	ReleaseCatCacheList(proclist);
	ReleaseCatCacheList(oprlist);
	ReleaseSysCache(classtup);
	return result;
}
