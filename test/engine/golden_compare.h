/*
 * golden_compare.h
 *	  The ColQwen2 engine tests' comparison of an embedding with a golden
 *	  file of the fixture manifest (test_qwen_model.c, test_qwen_oracle.c).
 *	  Include after jansson.h and test_util.h.
 */
#ifndef GOLDEN_COMPARE_H
#define GOLDEN_COMPARE_H

#include <math.h>

/*
 * compare
 *		Max |diff| and minimum row cosine of got against a golden file.
 */
static void
compare(const char *what, const float *got, json_t *entry, double *maxdiff, double *mincos)
{
	char		path[512];
	size_t		len;
	float	   *want;
	int			rows = (int) json_integer_value(json_array_get(json_object_get(entry, "shape"), 0));
	int			E = (int) json_integer_value(json_array_get(json_object_get(entry, "shape"), 1));
	int			r,
				j;

	snprintf(path, sizeof(path), "../fixtures/%s", json_string_value(json_object_get(entry, "file")));
	want = read_file(path, &len);
	CHECK(want != NULL && len == (size_t) rows * E * sizeof(float), "%s: golden %s", what, path);
	if (want == NULL)
		return;
	for (r = 0; r < rows; r++)
	{
		double		dot = 0,
					na = 0,
					nb = 0;

		for (j = 0; j < E; j++)
		{
			double		a = got[(size_t) r * E + j],
						b = want[(size_t) r * E + j];

			if (fabs(a - b) > *maxdiff)
				*maxdiff = fabs(a - b);
			dot += a * b;
			na += a * a;
			nb += b * b;
		}
		if (dot / sqrt(na * nb) < *mincos)
			*mincos = dot / sqrt(na * nb);
	}
	free(want);
}

#endif							/* GOLDEN_COMPARE_H */
