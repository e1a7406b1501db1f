/*
 * weights.c
 *	  Memory-mapped safetensors checkpoints (single file or sharded), their
 *	  tensors found by name; an optional PEFT LoRA adapter is merged at load
 *	  (lora.c).  The header parser is in safetensors.c.
 *
 * Files are mapped PROT_READ/MAP_SHARED so that several backends share the
 * weights through the page cache; nothing ever writes into a mapping.
 * Tensors whose data is not aligned to their element size (possible with an
 * odd header length) and tensors changed by a LoRA merge get owned copies.
 *
 * Every tensor also gets a canonical name with the layout prefixes of
 * docs/encoder.md#tensor-names removed; lookups match both names by suffix
 * at "." boundaries, and LoRA modules are paired with base tensors through
 * it (an adapter trained on one layout may sit on a base saved in another).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "weights_internal.h"

/* ---------------------------------------------------------------------
 * names
 * --------------------------------------------------------------------- */

/*
 * cp_strip_prefix
 *		If s starts with p, return the rest, else s.
 */
const char *
cp_strip_prefix(const char *s, const char *p)
{
	size_t		n = strlen(p);

	return strncmp(s, p, n) == 0 ? s + n : s;
}

/*
 * cp_canonical_name
 *		Tensor name without the layout prefixes of docs/encoder.md#tensor-names (malloc'd):
 *		"base_model.model.", then "vlm." or "model.", then "model.";
 *		"language_model.model.X" -> "language_model.X"; the vision tower
 *		always with its "vision_model." level (transformers 5 saves
 *		"vision_tower.X" without it); "language_model.lm_head.weight" ->
 *		"lm_head.weight".
 */
char *
cp_canonical_name(const char *name)
{
	const char *s = cp_strip_prefix(name, "base_model.model.");
	const char *t;
	const char *ins = NULL;		/* text to put back in front of rest */
	const char *rest;
	char	   *out;
	size_t		n;

	t = cp_strip_prefix(s, "vlm.");
	if (t == s)
		t = cp_strip_prefix(s, "model.");
	s = cp_strip_prefix(t, "model.");
	rest = s;
	if (strncmp(s, "language_model.model.", 21) == 0)
	{
		ins = "language_model.";
		rest = s + 21;
	}
	else if (strncmp(s, "vision_tower.", 13) == 0 &&
			 strncmp(s + 13, "vision_model.", 13) != 0)
	{
		ins = "vision_tower.vision_model.";
		rest = s + 13;
	}
	else if (strcmp(s, "language_model.lm_head.weight") == 0)
		rest = "lm_head.weight";
	n = (ins ? strlen(ins) : 0) + strlen(rest) + 1;
	out = malloc(n);
	if (out != NULL)
		snprintf(out, n, "%s%s", ins ? ins : "", rest);
	return out;
}

/*
 * cp_suffix_match
 *		Does name equal suffix or end with "." + suffix?
 */
bool
cp_suffix_match(const char *name, const char *suffix, size_t slen)
{
	size_t		nlen = strlen(name);

	if (nlen < slen || strcmp(name + nlen - slen, suffix) != 0)
		return false;
	return nlen == slen || name[nlen - slen - 1] == '.';
}

/*
 * find_tensor
 *		Index of the tensor matching suffix, -1 if none, -2 if ambiguous.
 */
static int
find_tensor(const CpWeights *w, const char *suffix)
{
	size_t		slen = strlen(suffix);
	int			found = -1;
	int			exact = -1;
	int			nfound = 0;
	int			i;

	for (i = 0; i < w->count; i++)
	{
		if (cp_suffix_match(w->tensors[i].name, suffix, slen) ||
			cp_suffix_match(w->canon[i], suffix, slen))
		{
			nfound++;
			found = i;
			if (strcmp(w->tensors[i].name, suffix) == 0 || strcmp(w->canon[i], suffix) == 0)
			{
				if (exact >= 0)
					return -2;
				exact = i;
			}
		}
	}
	if (nfound <= 1)
		return found;
	return exact >= 0 ? exact : -2;
}

/*
 * cp_weights_find_exact
 *		Index of the tensor whose stored or canonical name is name, -1 if
 *		none, -2 if several.
 */
int
cp_weights_find_exact(const CpWeights *w, const char *name, const char *canon)
{
	int			found = -1;
	int			i;

	for (i = 0; i < w->count; i++)
	{
		if (strcmp(w->tensors[i].name, name) == 0)
			return i;
		if (strcmp(w->canon[i], canon) == 0)
		{
			if (found >= 0)
				return -2;
			found = i;
		}
	}
	return found;
}

/*
 * cp_weights_find
 *		See weights.h.
 */
const CpTensor *
cp_weights_find(const CpWeights *w, const char *suffix)
{
	int			i;

	if (w == NULL || suffix == NULL)
		return NULL;
	i = find_tensor(w, suffix);
	return i >= 0 ? &w->tensors[i] : NULL;
}

/*
 * cp_weights_lookup
 *		cp_weights_find with an error message.
 */
CpStatus
cp_weights_lookup(const CpWeights *w, const char *suffix, const CpTensor **out,
				  CpError *err)
{
	int			i;

	*out = NULL;
	if (w == NULL || suffix == NULL)
		return cp_error(err, CP_ERR_INVALID_ARG, "no weights or tensor name given");
	i = find_tensor(w, suffix);
	if (i == -1)
		return cp_error(err, CP_ERR_NOT_FOUND, "checkpoint has no tensor \"%s\"", suffix);
	if (i == -2)
		return cp_error(err, CP_ERR_FORMAT, "tensor name \"%s\" is ambiguous in the checkpoint", suffix);
	*out = &w->tensors[i];
	return CP_OK;
}

/*
 * cp_format_shape
 *		See weights.h.
 */
void
cp_format_shape(char *buf, size_t size, int ndim, const int64_t *shape)
{
	size_t		pos = 0;
	int			i;

	pos += snprintf(buf + pos, size - pos, "[");
	for (i = 0; i < ndim && pos < size; i++)
		pos += snprintf(buf + pos, size - pos, "%s%lld", i ? ", " : "", (long long) shape[i]);
	if (pos < size)
		snprintf(buf + pos, size - pos, "]");
}

/*
 * cp_weights_require
 *		Find a tensor and check its exact shape.
 */
CpStatus
cp_weights_require(const CpWeights *w, const char *suffix, int ndim,
				   const int64_t *shape, const CpTensor **out, CpError *err)
{
	const CpTensor *t;
	CpStatus	st;
	bool		ok;
	int			i;

	st = cp_weights_lookup(w, suffix, &t, err);
	if (st != CP_OK)
		return st;
	ok = (t->ndim == ndim);
	for (i = 0; ok && i < ndim; i++)
		ok = (t->shape[i] == shape[i]);
	if (!ok)
	{
		char		want[128];
		char		have[128];

		cp_format_shape(want, sizeof(want), ndim, shape);
		cp_format_shape(have, sizeof(have), t->ndim, t->shape);
		*out = NULL;
		return cp_error(err, CP_ERR_SHAPE, "tensor \"%s\" has shape %s, expected %s",
						t->name, have, want);
	}
	*out = t;
	return CP_OK;
}

/*
 * cp_weights_count / cp_weights_at
 *		Enumerate tensors (sorted by name).
 */
int
cp_weights_count(const CpWeights *w)
{
	return w ? w->count : 0;
}

const CpTensor *
cp_weights_at(const CpWeights *w, int i)
{
	if (w == NULL || i < 0 || i >= w->count)
		return NULL;
	return &w->tensors[i];
}

/* ---------------------------------------------------------------------
 * files
 * --------------------------------------------------------------------- */

/*
 * cp_weights_close
 *		Unmap everything and free owned copies.
 */
void
cp_weights_close(CpWeights *w)
{
	int			i;

	if (w == NULL)
		return;
	for (i = 0; i < w->count; i++)
	{
		free((char *) w->tensors[i].name);
		free(w->canon[i]);
	}
	for (i = 0; i < w->nmaps; i++)
		munmap(w->maps[i].addr, w->maps[i].size);
	for (i = 0; i < w->nowned; i++)
		free(w->owned[i]);
	free(w->tensors);
	free(w->canon);
	free(w->maps);
	free(w->owned);
	free(w);
}

/*
 * cp_weights_add_owned
 *		Remember a buffer to free at close.
 */
CpStatus
cp_weights_add_owned(CpWeights *w, void *p, CpError *err)
{
	void	  **n = realloc(w->owned, (w->nowned + 1) * sizeof(void *));

	if (n == NULL)
	{
		free(p);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	w->owned = n;
	w->owned[w->nowned++] = p;
	return CP_OK;
}

/*
 * cp_weights_add_tensor
 *		Append a tensor (takes ownership of name).
 */
CpStatus
cp_weights_add_tensor(CpWeights *w, const CpTensor *t, CpError *err)
{
	char	   *canon;

	if (w->count == w->cap)
	{
		int			ncap = w->cap ? w->cap * 2 : 256;
		CpTensor   *nt = realloc(w->tensors, ncap * sizeof(CpTensor));
		char	  **nc;

		if (nt == NULL)
			goto nomem;
		w->tensors = nt;
		nc = realloc(w->canon, ncap * sizeof(char *));
		if (nc == NULL)
			goto nomem;
		w->canon = nc;
		w->cap = ncap;
	}
	canon = cp_canonical_name(t->name);
	if (canon == NULL)
		goto nomem;
	w->tensors[w->count] = *t;
	w->canon[w->count] = canon;
	w->count++;
	return CP_OK;

nomem:
	free((char *) t->name);
	return cp_error(err, CP_ERR_NOMEM, "out of memory");
}

/*
 * map_file
 *		mmap path read-only; CP_ERR_NOT_FOUND when absent.
 */
static CpStatus
map_file(const char *path, CpMapping *m, CpError *err)
{
	struct stat sb;
	int			fd;
	void	   *addr;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cp_error(err, errno == ENOENT ? CP_ERR_NOT_FOUND : CP_ERR_IO,
						"could not open \"%s\": %s", path, strerror(errno));
	if (fstat(fd, &sb) != 0)
	{
		int			e = errno;

		close(fd);
		return cp_error(err, CP_ERR_IO, "could not stat \"%s\": %s", path, strerror(e));
	}
	if (!S_ISREG(sb.st_mode))
	{
		close(fd);
		return cp_error(err, CP_ERR_IO, "\"%s\" is not a regular file", path);
	}
	if (sb.st_size < 8)
	{
		close(fd);
		return cp_error(err, CP_ERR_FORMAT, "\"%s\" is too small to be a safetensors file (%lld bytes)",
						path, (long long) sb.st_size);
	}
	addr = mmap(NULL, (size_t) sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (addr == MAP_FAILED)
		return cp_error(err, CP_ERR_IO, "could not map \"%s\": %s", path, strerror(errno));
	m->addr = addr;
	m->size = (size_t) sb.st_size;
	return CP_OK;
}

/*
 * cp_weights_add_file
 *		Map one safetensors file and append its tensors to w.  If first is
 *		non-NULL it receives the index of the first tensor added.
 */
CpStatus
cp_weights_add_file(CpWeights *w, const char *path, CpError *err)
{
	CpMapping	m;
	CpMapping  *nm;
	CpTensor   *ts = NULL;
	int			n = 0;
	size_t		data_start = 0;
	CpStatus	st;
	int			i;

	st = map_file(path, &m, err);
	if (st != CP_OK)
		return st;
	nm = realloc(w->maps, (w->nmaps + 1) * sizeof(CpMapping));
	if (nm == NULL)
	{
		munmap(m.addr, m.size);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	w->maps = nm;
	w->maps[w->nmaps++] = m;

	st = cp_safetensors_parse_header(m.addr, m.size, &ts, &n, &data_start, err);
	if (st != CP_OK)
	{
		/* prepend the file name to the parser's message */
		if (err != NULL)
		{
			char		tmp[CP_ERROR_MSG_LEN];

			snprintf(tmp, sizeof(tmp), "%s", err->msg);
			cp_error(err, st, "\"%s\": %s", path, tmp);
		}
		return st;
	}
	for (i = 0; i < n; i++)
	{
		CpTensor	t = ts[i];
		const uint8_t *p = (const uint8_t *) m.addr + data_start + (uintptr_t) t.data;
		size_t		esize = cp_dtype_size(t.dtype);

		t.data = p;
		if (((uintptr_t) p % esize) != 0)
		{
			void	   *copy = malloc(t.nbytes ? t.nbytes : 1);

			if (copy == NULL)
				st = cp_error(err, CP_ERR_NOMEM, "out of memory");
			else
			{
				memcpy(copy, p, t.nbytes);
				t.data = copy;
				st = cp_weights_add_owned(w, copy, err);
			}
		}
		ts[i].name = NULL;		/* ownership moves to w (even on failure) */
		if (st == CP_OK)
			st = cp_weights_add_tensor(w, &t, err);
		else
			free((char *) t.name);
		if (st != CP_OK)
		{
			for (i = i + 1; i < n; i++)
				free((char *) ts[i].name);
			free(ts);
			return st;
		}
	}
	free(ts);
	return CP_OK;
}

/*
 * cp_join_path
 *		dir + "/" + name into buf; CP_ERR_LIMIT when too long.
 */
CpStatus
cp_join_path(char *buf, size_t size, const char *dir, const char *name, CpError *err)
{
	int			n = snprintf(buf, size, "%s/%s", dir, name);

	if (n < 0 || (size_t) n >= size)
		return cp_error(err, CP_ERR_LIMIT, "path \"%s/%s\" is too long", dir, name);
	return CP_OK;
}

/*
 * cp_file_exists
 *		True if path names an existing file.
 */
bool
cp_file_exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/*
 * name_cmp
 *		qsort order of tensors by name (with the canonical names array kept in
 *		step through an index sort).
 */
typedef struct CpNameIdx
{
	const char *name;
	int			idx;
} CpNameIdx;

static int
nameidx_cmp(const void *a, const void *b)
{
	return strcmp(((const CpNameIdx *) a)->name, ((const CpNameIdx *) b)->name);
}

/*
 * cp_weights_sort_and_check
 *		Sort tensors by name and reject duplicates (e.g. across shards).
 */
CpStatus
cp_weights_sort_and_check(CpWeights *w, CpError *err)
{
	CpNameIdx  *ix;
	CpTensor   *nt;
	char	  **nc;
	int			i;

	if (w->count == 0)
		return CP_OK;
	ix = malloc(w->count * sizeof(CpNameIdx));
	nt = malloc(w->count * sizeof(CpTensor));
	nc = malloc(w->count * sizeof(char *));
	if (ix == NULL || nt == NULL || nc == NULL)
	{
		free(ix);
		free(nt);
		free(nc);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	for (i = 0; i < w->count; i++)
	{
		ix[i].name = w->tensors[i].name;
		ix[i].idx = i;
	}
	qsort(ix, w->count, sizeof(CpNameIdx), nameidx_cmp);
	for (i = 0; i < w->count; i++)
	{
		nt[i] = w->tensors[ix[i].idx];
		nc[i] = w->canon[ix[i].idx];
	}
	free(w->tensors);
	free(w->canon);
	w->tensors = nt;
	w->canon = nc;
	w->cap = w->count;
	for (i = 1; i < w->count; i++)
		if (strcmp(nt[i - 1].name, nt[i].name) == 0)
		{
			free(ix);
			return cp_error(err, CP_ERR_FORMAT, "tensor \"%s\" is stored twice in the checkpoint", nt[i].name);
		}
	free(ix);
	return CP_OK;
}

/*
 * open_checkpoint
 *		Add the tensors of dir (model.safetensors or its sharded index).
 */
static CpStatus
open_checkpoint(CpWeights *w, const char *dir, CpError *err)
{
	char		path[4096];
	json_t	   *root;
	json_t	   *map;
	json_error_t jerr;
	const char *key;
	json_t	   *val;
	const char **shards = NULL;
	int			nshards = 0;
	CpStatus	st;
	int			first;
	int			i;

	/* a single file wins over an index, as in transformers */
	st = cp_join_path(path, sizeof(path), dir, "model.safetensors", err);
	if (st != CP_OK)
		return st;
	if (cp_file_exists(path))
		return cp_weights_add_file(w, path, err);
	st = cp_join_path(path, sizeof(path), dir, "model.safetensors.index.json", err);
	if (st != CP_OK)
		return st;
	if (!cp_file_exists(path))
		return cp_error(err, CP_ERR_NOT_FOUND,
						"no model.safetensors or model.safetensors.index.json in \"%s\"", dir);

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return cp_error(err, CP_ERR_FORMAT, "\"%s\" is not valid JSON: %s (line %d)", path, jerr.text, jerr.line);
	map = json_object_get(root, "weight_map");
	if (!json_is_object(map) || json_object_size(map) == 0)
	{
		json_decref(root);
		return cp_error(err, CP_ERR_FORMAT, "\"%s\" has no \"weight_map\" object", path);
	}
	shards = calloc(json_object_size(map), sizeof(char *));
	if (shards == NULL)
	{
		json_decref(root);
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	}
	json_object_foreach(map, key, val)
	{
		const char *f;
		bool		seen = false;

		if (!json_is_string(val))
		{
			st = cp_error(err, CP_ERR_FORMAT, "\"%s\": weight_map entry \"%s\" is not a file name", path, key);
			goto done;
		}
		f = json_string_value(val);
		/* shards are plain file names next to the index: no paths */
		if (f[0] == '\0' || strchr(f, '/') != NULL || strcmp(f, "..") == 0 || strcmp(f, ".") == 0)
		{
			st = cp_error(err, CP_ERR_FORMAT, "\"%s\": shard name \"%s\" is not a plain file name", path, f);
			goto done;
		}
		for (i = 0; i < nshards && !seen; i++)
			seen = strcmp(shards[i], f) == 0;
		if (!seen)
			shards[nshards++] = f;
	}
	first = w->count;
	for (i = 0; i < nshards; i++)
	{
		char		spath[4096];

		st = cp_join_path(spath, sizeof(spath), dir, shards[i], err);
		if (st == CP_OK)
			st = cp_weights_add_file(w, spath, err);
		if (st != CP_OK)
			goto done;
	}
	/* every tensor the index promises must be present */
	json_object_foreach(map, key, val)
	{
		bool		found = false;

		for (i = first; i < w->count && !found; i++)
			found = strcmp(w->tensors[i].name, key) == 0;
		if (!found)
		{
			/* a non-float tensor may be listed but not kept; accept only if
			 * its shard really has it, which cp_weights_add_file checked implicitly is
			 * not possible here, so say what is missing */
			st = cp_error(err, CP_ERR_NOT_FOUND, "tensor \"%s\" listed in \"%s\" is missing from shard \"%s\" (or not F32/F16/BF16)",
						  key, path, json_string_value(val));
			goto done;
		}
	}
	st = CP_OK;
done:
	free(shards);
	json_decref(root);
	return st;
}

/*
 * cp_weights_open
 *		See weights.h.
 */
CpStatus
cp_weights_open(const char *dir, const char *base_dir, CpWeights **out, CpError *err)
{
	CpWeights  *w;
	char		path[4096];
	char		basebuf[4096];
	bool		adapter;
	CpStatus	st;

	*out = NULL;
	if (dir == NULL || dir[0] == '\0')
		return cp_error(err, CP_ERR_INVALID_ARG, "no checkpoint folder given");
	st = cp_join_path(path, sizeof(path), dir, "adapter_config.json", err);
	if (st != CP_OK)
		return st;
	adapter = cp_file_exists(path);
	if (adapter && (base_dir == NULL || base_dir[0] == '\0'))
	{
		char		full[4096];
		char		index[4096];

		if (cp_adapter_base_dir(dir, basebuf, sizeof(basebuf)))
			base_dir = basebuf;
		else if (cp_join_path(full, sizeof(full), dir, "model.safetensors", NULL) == CP_OK &&
				 cp_join_path(index, sizeof(index), dir, "model.safetensors.index.json", NULL) == CP_OK &&
				 (cp_file_exists(full) || cp_file_exists(index)))
			adapter = false;	/* a full checkpoint shipped with its adapter config */
		else
			return cp_error(err, CP_ERR_INVALID_ARG,
							"\"%s\" is a LoRA adapter: the base checkpoint folder must be given", dir);
	}
	w = calloc(1, sizeof(CpWeights));
	if (w == NULL)
		return cp_error(err, CP_ERR_NOMEM, "out of memory");
	st = open_checkpoint(w, adapter ? base_dir : dir, err);
	if (st == CP_OK)
		st = cp_weights_sort_and_check(w, err);
	if (st == CP_OK && adapter)
	{
		st = cp_lora_apply(w, dir, err);
		if (st == CP_OK)
			st = cp_weights_sort_and_check(w, err);
	}
	if (st != CP_OK)
	{
		cp_weights_close(w);
		return st;
	}
	*out = w;
	return CP_OK;
}
