/*
 * fuzz_safetensors.c
 *	  libFuzzer harness for cp_safetensors_parse_header: any bytes as a
 *	  whole safetensors file.  On success every tensor must lie inside the
 *	  file, and converting it to float must not read outside it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weights.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	CpTensor   *ts = NULL;
	int			n = 0;
	size_t		start = 0;
	CpError		err;
	int			i;

	if (cp_safetensors_parse_header(data, size, &ts, &n, &start, &err) != CP_OK)
		return 0;
	for (i = 0; i < n; i++)
	{
		uintptr_t	off = (uintptr_t) ts[i].data;
		CpTensor	t = ts[i];
		void	   *copy;
		float	   *f;
		int64_t		k = t.numel < 64 ? t.numel : 64;

		/* invariant: tensor inside the file, size consistent */
		if (start > size || off > size - start || t.nbytes > size - start - off ||
			t.nbytes != (size_t) t.numel * cp_dtype_size(t.dtype))
			abort();
		/* convert the first elements from an aligned copy */
		copy = malloc(t.nbytes + 1);
		f = malloc((size_t) k * sizeof(float) + 1);
		memcpy(copy, data + start + off, t.nbytes);
		t.data = copy;
		cp_tensor_to_f32(&t, 0, k, f);
		free(f);
		free(copy);
	}
	cp_safetensors_free_header(ts, n);
	return 0;
}
