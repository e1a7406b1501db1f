/*
 * mvivf.h
 *	  The mvivf index access method: a token-level IVF index over multivector
 *	  columns answering ORDER BY emb <#> query LIMIT k (see docs/mvivf.md).
 *
 * Search: every live document is ranked by centroid interaction (sum over
 * query rows of the best query row . centroid over its tokens), bounded from
 * the document lists of mvivf.probes centroids per query row and computed
 * exactly only where the bound can reach the refined prefix; the best
 * mvivf.refine of them by their quantized MaxSim (centroid + decoded residual
 * code of every token), then documents are reranked exactly, best
 * approximate first, by reading the indexed value from the heap under the
 * scan snapshot; rows come back in exact, non-decreasing distance order
 * (xs_recheckorderby = false), see mvscan.c for how later batches keep that
 * order.
 *
 * ON-DISK FORMAT, version 4 (8 KB pages; all pages use the standard page
 * header, pd_lower marks the end of the packed items, and an
 * MvivfPageOpaqueData sits in the special space):
 *
 *	block 0          metapage: MvivfMetaPageData (magic, version, options,
 *	                 counts, block numbers of every area, quantizer tables,
 *	                 the drift limit of inserts and the count of documents
 *	                 reranked first, read as 0 where an older build's
 *	                 metapage ends before them)
 *	centroid pages   nlists x dim float32, row-major, packed
 *	                 centroidsPerPage rows per page, contiguous from
 *	                 centroidStart
 *	list directory   nlists x MvivfListEntry {head, tail, ntokens}, contiguous
 *	                 from listDirStart; the lists stay empty since version 2
 *	doc directory    a chain from docDirHead; item i of the chain is document
 *	                 id i: MvivfDocEntry {heap tid, ntokens, flags (dead)}
 *	forward pages    a chain from forwardHead: groups of one document's
 *	                 tokens, appended by builds and inserts; a document's
 *	                 groups follow each other.  Since version 4 a document
 *	                 is its centroid-number groups {MvivfForwardGroup,
 *	                 kind LISTS; uint16 list[n]} (all its tokens, about
 *	                 2 kB for a ColPali page, mostly on one page), then its
 *	                 code groups {kind CODES; uint8 code[n][codeSize]} in
 *	                 the same token order: the centroid interaction reads
 *	                 the first alone.  Versions 2-3 wrote mixed groups
 *	                 {kind TOKENS (0); uint16 list[n]; code[n][codeSize]},
 *	                 which are still read, and written by inserts into an
 *	                 index of those versions
 *	document lists   (version 3; written by CREATE INDEX, never changed) three
 *	                 areas of contiguous MVIVF_DOCLIST pages from
 *	                 docListDir, docListStart, docLocStart: nlists + 1
 *	                 uint32 offsets; the entries, uint32 document ids (list
 *	                 c = entries off[c] .. off[c+1]-1: the documents with a
 *	                 token assigned to centroid c, increasing); per listed
 *	                 document an MvivfDocLocation {forward block, offset of
 *	                 its first group}.  Item i of an area is on page start +
 *	                 i / MvivfItemsPerPage(item size).  Documents from
 *	                 listedDocs on (inserted later) are not listed: their
 *	                 groups follow listedForwardTail's
 *	posting, pending pages of version 1 are no longer written; VACUUM's
 *	                 merge and compaction find them empty
 *	free pages       pages emptied by VACUUM, marked MVIVF_DELETED and
 *	                 recorded in the free space map
 *
 * Version 2 indexes (no document lists; their metapage ends at forwardTail)
 * are read as they are and scanned by a full pass.  Version 1 indexes
 * (codes in posting lists) are refused with a hint to REINDEX
 * (MvivfReadMeta).
 *
 * A residual code stores, per dimension, nbits (1, 2 or 4) selecting one of
 * 2^nbits bucket weights (meta.weights); an approximate dot product with a
 * query row q is dot(q, centroid) + sum_d q[d] * weights[code_d].
 * Dimension d of a code lives in byte d * nbits / 8, at bit offset
 * (d * nbits) % 8 (least significant bits first).
 *
 * Locking: page-level buffer locks only; writers that add documents or move
 * postings (insert, merge) also hold a heavyweight lock on the page lock tag
 * of block 0 (MVIVF_WRITE_LOCK).  Readers never hold a pin across calls.
 * Every change goes through generic WAL.
 */
#ifndef MVIVF_H
#define MVIVF_H

#include "postgres.h"

#include "access/amapi.h"
#include "access/generic_xlog.h"
#include "access/reloptions.h"
#include "common/pg_prng.h"
#include "access/relscan.h"
#include "nodes/execnodes.h"
#include "nodes/pathnodes.h"
#include "storage/bufmgr.h"
#include "utils/relcache.h"

#include "multivector.h"

#define MVIVF_MAGIC				0x4D564946	/* "MVIF" */
#define MVIVF_VERSION			4	/* written by builds: centroid numbers
									 * apart from codes in the forward store */
#define MVIVF_MIN_VERSION		2	/* oldest readable: 2 (no document lists),
									 * 3 (document lists, mixed forward
									 * groups); 1 (0.1.0-0.2.0, codes in
									 * posting lists) is refused */
#define MVIVF_SPLIT_VERSION		4	/* first version of split forward groups */
#define MVIVF_METAPAGE_BLKNO	0
#define MVIVF_WRITE_LOCK		0	/* heavyweight page lock tag (block 0) */
#define MVIVF_PAGE_ID			0xFF8C

/* page kinds (opaque.flags) */
#define MVIVF_META				(1 << 0)
#define MVIVF_CENTROID			(1 << 1)
#define MVIVF_LISTDIR			(1 << 2)
#define MVIVF_POSTING			(1 << 3)
#define MVIVF_DOCDIR			(1 << 4)
#define MVIVF_PENDING			(1 << 5)
#define MVIVF_DELETED			(1 << 6)
#define MVIVF_FORWARD			(1 << 7)
#define MVIVF_DOCLIST			(1 << 8)	/* document lists (version 3) */

/* document flags */
#define MVIVF_DOC_DEAD			(1 << 0)
/*
 * A row of the document has a norm above 2 (MVIVF_RERANK_NORM2): the
 * residual codes, scaled for unit rows, cannot express it, and the
 * approximate distance of the document may be far from its exact one in
 * either direction.  Every scan reranks such documents before the others
 * (RerankForced, mvscan.c).  Indexes written before the flag existed have
 * it on no document.
 */
#define MVIVF_DOC_RERANK		(1 << 1)
#define MVIVF_RERANK_NORM2		4.0
/*
 * The row's indexed value is NULL: the document has no tokens, no codes and
 * no approximate score.  A scan that has reranked every other document
 * returns these last, as ORDER BY ... ASC puts NULL distances last
 * (mvivfgettuple).  Indexes written before the flag existed hold no NULL
 * rows at all.
 */
#define MVIVF_DOC_NULL			(1 << 2)
/*
 * Inserted after the build, the document's tokens are coded far worse than
 * those of the build's documents (its drift score is above the metapage's
 * driftLimit, mvdrift.c); it is flagged MVIVF_DOC_RERANK too, which is what
 * scans act on.
 */
#define MVIVF_DOC_DRIFT			(1 << 3)
/* documents that are never candidates of an ordered scan */
#define MVIVF_DOC_UNRANKED		(MVIVF_DOC_DEAD | MVIVF_DOC_NULL)

/* reloption defaults and limits */
#define MVIVF_DEFAULT_LISTS		0	/* auto: 4 * sqrt(tokens) */
#define MVIVF_MAX_LISTS			65536
#define MVIVF_DEFAULT_BITS		2
#define MVIVF_DEFAULT_ITERS		6
#define MVIVF_MAX_ITERS			50
#define MVIVF_DEFAULT_SAMPLES	64	/* sampled tokens per list for k-means */
#define MVIVF_MAX_BUCKETS		16
#define MVIVF_DEFAULT_REFINE	256
#define MVIVF_DEFAULT_MISS_TOLERANCE 0.001
#define MVIVF_ASSIGN_BLOCK		1024	/* rows per centroid-scoring GEMM */
#define MVIVF_TWOLEVEL_BLOCK	2048	/* rows assigned per coarse GEMM */
#define MVIVF_COARSE_MIN_LISTS	1024	/* two-level assignment from here on */
#define MVIVF_COARSE_PROBES		8	/* coarse groups searched per token */

/* build phases for pg_stat_progress_create_index (1 = initializing) */
#define PROGRESS_MVIVF_PHASE_SAMPLE		2
#define PROGRESS_MVIVF_PHASE_KMEANS		3
#define PROGRESS_MVIVF_PHASE_ASSIGN		4
#define PROGRESS_MVIVF_PHASE_WRITE		5

/* iterative scan modes */
typedef enum MvivfIterativeScan
{
	MVIVF_ITERATIVE_OFF,		/* stop after mvivf.candidates reranked */
	MVIVF_ITERATIVE_STRICT		/* go on up to mvivf.max_scan_docs */
}			MvivfIterativeScan;

/* GUCs (mvivf.c) */
extern int	mvivf_probes;
extern int	mvivf_candidates;
extern int	mvivf_rerank;
extern int	mvivf_iterative_scan;
extern int	mvivf_max_scan_docs;
extern int	mvivf_refine;
extern double mvivf_miss_tolerance;
extern int	mvivf_max_rerank;

/* reloptions, as stored in rd_options */
typedef struct MvivfOptions
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int			lists;			/* 0 = automatic */
	int			bits;			/* bits per residual dimension: 1, 2 or 4 */
	int			kmeansIters;	/* k-means iterations */
	int			samplesPerList; /* k-means training sample per list */
}			MvivfOptions;

typedef struct MvivfPageOpaqueData
{
	BlockNumber next;			/* next page of the chain, or Invalid */
	uint32		list;			/* posting pages: list number */
	uint16		nitems;			/* packed items on the page */
	uint16		flags;			/* MVIVF_* page kind */
	uint16		unused;
	uint16		page_id;		/* MVIVF_PAGE_ID, for tools */
}			MvivfPageOpaqueData;

typedef MvivfPageOpaqueData * MvivfPageOpaque;

typedef struct MvivfMetaPageData
{
	uint32		magic;
	uint32		version;
	uint16		dim;			/* 0 until the first row is known */
	uint16		nbits;
	uint32		nlists;			/* 0 = untrained: scans rerank all docs */
	uint32		codeSize;		/* bytes per residual code */
	uint32		centroidsPerPage;
	BlockNumber centroidStart;
	BlockNumber listDirStart;
	BlockNumber docDirHead;
	BlockNumber docDirTail;
	uint32		ndocs;			/* documents ever added (= next docid) */
	uint32		ndead;			/* documents marked dead */
	BlockNumber pendingHead;
	BlockNumber pendingTail;
	uint32		npending;		/* postings in the pending area */
	uint64		ntokens;		/* postings in lists + pending */
	float		weights[MVIVF_MAX_BUCKETS]; /* bucket reconstruction values */
	float		cutoffs[MVIVF_MAX_BUCKETS]; /* bucket upper bounds (n - 1) */
	BlockNumber forwardHead;	/* token codes per document (version 2) */
	BlockNumber forwardTail;
	/* document lists (version 3; all zero in a version 2 index: no lists) */
	uint32		listedDocs;		/* documents 0 .. listedDocs-1 are listed */
	BlockNumber listedForwardTail;	/* the build's last forward page: the
									 * unlisted tail's groups follow */
	BlockNumber docListDir;		/* nlists + 1 uint32 offsets */
	BlockNumber docListStart;	/* npostings uint32 document ids */
	BlockNumber docLocStart;	/* listedDocs MvivfDocLocation */
	uint32		npostings;		/* entries of the document lists */
	/*
	 * Inserts flag documents whose drift score exceeds this (mvdrift.c); 0
	 * in indexes built before it was recorded (their metapage ends before
	 * it) and in indexes built without documents: no insert is flagged.
	 */
	float		driftLimit;
	/*
	 * Documents flagged MVIVF_DOC_RERANK (every scan reranks them first),
	 * counted by builds and inserts, for the cost estimate; never lowered
	 * (VACUUM leaves it), so an upper bound.  0 where the metapage ends
	 * before it.
	 */
	uint32		nforced;
}			MvivfMetaPageData;

typedef MvivfMetaPageData * MvivfMetaPage;

typedef struct MvivfListEntry
{
	BlockNumber head;
	BlockNumber tail;
	uint32		ntokens;
}			MvivfListEntry;

typedef struct MvivfDocEntry
{
	ItemPointerData tid;
	uint16		ntokens;		/* saturates at PG_UINT16_MAX */
	uint16		flags;			/* MVIVF_DOC_* */
}			MvivfDocEntry;

/* where a listed document's first forward group is (version 3) */
typedef struct MvivfDocLocation
{
	BlockNumber block;
	uint16		offset;			/* byte offset of the group in the page */
	uint16		unused;
}			MvivfDocLocation;

/*
 * Forward pages: groups of one document's tokens, packed.  A group of kind
 * TOKENS (versions 2-3) is {MvivfForwardGroup; uint16 list[ntokens];
 * uint8 code[ntokens][codeSize]}; since version 4 a document's tokens are
 * written as LISTS groups {MvivfForwardGroup; uint16 list[ntokens]} for all
 * of them, then CODES groups {MvivfForwardGroup; uint8
 * code[ntokens][codeSize]} in the same order, so that the centroid
 * interaction reads about a seventeenth of the bytes and one or two pages
 * per document.  A document's groups follow each other in the chain.
 */
typedef struct MvivfForwardGroup
{
	uint32		docid;
	uint16		ntokens;
	uint16		kind;			/* MVIVF_GROUP_*; 0 before version 4 */
}			MvivfForwardGroup;

#define MVIVF_GROUP_TOKENS		0	/* centroid numbers, then codes */
#define MVIVF_GROUP_LISTS		1	/* centroid numbers only (version 4) */
#define MVIVF_GROUP_CODES		2	/* codes only (version 4) */

#define MvivfForwardTokenSize(codeSize)	(sizeof(uint16) + (codeSize))

/* bytes per token of a group of this kind */
static inline Size
MvivfGroupTokenSize(int kind, int codeSize)
{
	if (kind == MVIVF_GROUP_LISTS)
		return sizeof(uint16);
	if (kind == MVIVF_GROUP_CODES)
		return (Size) codeSize;
	return MvivfForwardTokenSize(codeSize);
}

#define MvivfPageGetOpaque(page) ((MvivfPageOpaque) PageGetSpecialPointer(page))
#define MvivfPageGetMeta(page)	((MvivfMetaPage) PageGetContents(page))
#define MvivfPageItems(page)	((char *) PageGetContents(page))
#define MVIVF_PAGE_CAPACITY \
	(BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(MvivfPageOpaqueData)))
#define MvivfPostingSize(codeSize)	(sizeof(uint32) + (codeSize))
#define MvivfPendingSize(codeSize)	(2 * sizeof(uint32) + (codeSize))
#define MvivfItemsPerPage(itemsz)	((int) (MVIVF_PAGE_CAPACITY / (itemsz)))
/* a centroid must fit on one page: the largest dimension an index supports */
#define MVIVF_MAX_DIM				((int) (MVIVF_PAGE_CAPACITY / sizeof(float)))

/* quantizer and meta snapshot used by build, insert and scan */
typedef struct MvivfQuantizer
{
	int			dim;
	int			nbits;
	int			nlists;
	int			codeSize;
	float	   *centroids;		/* nlists x dim */
	float		weights[MVIVF_MAX_BUCKETS];
	float		cutoffs[MVIVF_MAX_BUCKETS];
	/* two-level assignment, from MvivfPrepareCoarse (ncoarse 0 = flat) */
	int			ncoarse;
	float	   *coarse;			/* ncoarse x dim */
	int		   *groupStart;		/* ncoarse + 1 offsets into groupMembers */
	int		   *groupMembers;	/* list numbers, grouped by coarse centroid */
	float	   *groupCentroids; /* centroids in groupMembers order */
	/* the coarse and groups' centroids in bf16 AMX tiles (NULL without AMX) */
	uint32	   *coarsePacked;
	uint32	   *groupPacked;
	Size	   *groupPackedStart;	/* ncoarse offsets into groupPacked */
}			MvivfQuantizer;

/* a posting waiting to be appended to a list (build, merge) */
typedef struct MvivfPosting
{
	uint32		list;
	uint32		docid;
	uint8	   *code;
}			MvivfPosting;

/*
 * Tables of one pass of the approximate stage (mvtables.c, mvapprox.c): query
 * rows are scored in blocks of MVIVF_ROW_BLOCK (one AVX-512 register).
 */
#define MVIVF_ROW_BLOCK	16

/*
 * The quantized MaxSim runs on 16-bit fixed-point scores (value x
 * MVIVF_FIXED_SCALE, saturating adds), 32 query rows per AVX-512 register:
 * one register covers a whole ColPali query, where float needed two, and the
 * tables are half the size.  A row's sum of a centroid score and 64 table
 * entries is exact to about 1e-3.
 */
#define MVIVF_FIXED_BLOCK	32
#define MVIVF_FIXED_SCALE	4096.0f

typedef struct MvivfApproxState
{
	int			nq;				/* query rows of this pass */
	int			nqPad;			/* nq rounded up to MVIVF_ROW_BLOCK */
	int			nqPadFixed;		/* nq rounded up to MVIVF_FIXED_BLOCK */
	int			nlists;
	int			codeSize;
	const float *ST;			/* nlists x nqPad: query row . centroid */
	const int16 *STFixed;		/* nlists x nqPadFixed: the same, fixed point */
	bool		byteTables;		/* lut per code byte, else per nibble */
	const int16 *lut;			/* per block of MVIVF_FIXED_BLOCK rows: per
								 * code byte 256 values (byteTables), else
								 * per 4-bit nibble 16 values, x
								 * MVIVF_FIXED_BLOCK, fixed point: the value's
								 * contribution to query row . residual */
	/* the quantized MaxSim in int8 (AMX or VNNI, mvapprox.c), when set */
	bool		int8Codes;
	struct CpCodesQuery *codesQuery;	/* int8 query tiles and scales */
	const float *STWide;		/* nlists x nqPadFixed: ST, AMX's row blocks */
}			MvivfApproxState;

/* a + b, saturated to int16: what _mm512_adds_epi16 computes */
static inline int16
MvivfSatAdd16(int16 a, int16 b)
{
	int32		x = (int32) a + b;

	return (int16) Max(PG_INT16_MIN, Min(PG_INT16_MAX, x));
}

/*
 * A sample of approximation errors (mvmargin.c): its size, mean, standard
 * deviation and largest value.
 */
typedef struct MvivfErrorStats
{
	int			n;
	double		mean;
	double		sd;
	double		max;
}			MvivfErrorStats;

/*
 * The gain of an unrefined document's residual codes (quantized MaxSim less
 * centroid interaction) as a line in its centroid interaction x, fitted on
 * the random sample of unrefined documents (MvivfFitGain): the gain of a
 * page whose centroids already match the query well is smaller.
 */
typedef struct MvivfGainFit
{
	int			n;				/* sample size; below 3, no fit */
	double		meanX;
	double		meanGain;
	double		sxx;			/* sum of (x - meanX)^2 */
	double		slope;			/* at least -1 (see MvivfFitGain) */
	double		residSd;		/* spread of the gains about the line */
	double		residMax;		/* largest gain above the line */
	double		minX;
	double		maxX;
}			MvivfGainFit;

/* scan state */
typedef struct MvivfScanCandidate
{
	uint32		docid;
	ItemPointerData tid;
	double		score;			/* approximate, then exact distance */
}			MvivfScanCandidate;

/*
 * Documents of the gain sample (the random unrefined documents refined with
 * the first ones) whose quantized MaxSim's errors model those of the
 * unrefined documents (RerankGainSample)
 */
#define MVIVF_GAIN_RERANK		16

/*
 * The last refined documents in centroid-interaction order whose gains
 * model those of the next unrefined ones (MvivfMayStop)
 */
#define MVIVF_EDGE_SAMPLE		64

/* which sample a batch of reranks is (MvivfScanOpaqueData.sampling) */
#define MVIVF_SAMPLING_NONE		0	/* in approximate order */
#define MVIVF_SAMPLING_REFINED	1	/* random refined documents */
#define MVIVF_SAMPLING_GAIN		2	/* the gain sample's documents */

/* why a scan's adaptive rerank stopped (EXPLAIN shows it) */
#define MVIVF_STOP_NONE		0
#define MVIVF_STOP_BOUND	1	/* no unreranked document can beat the row */
#define MVIVF_STOP_ALL		2	/* every live document reranked */
#define MVIVF_STOP_BUDGET	3	/* mvivf.max_scan_docs / mvivf.candidates */
#define MVIVF_STOP_CAP		4	/* mvivf.max_rerank */

typedef struct MvivfScanOpaqueData
{
	MemoryContext scanCtx;		/* everything of one ORDER BY evaluation */
	bool		started;
	bool		nullQuery;
	MultiVector *query;
	/* every live document, in approximate order */
	MvivfScanCandidate *cands;
	int			ncands;
	int			nextCand;		/* next candidate to rerank */
	/* how many documents may be reranked, and in which steps */
	int			firstBatch;		/* reranked before the first row */
	int			batchSize;		/* each further batch */
	int			budget;			/* most documents reranked by this scan */
	/* reranked rows not returned yet: a min-heap on exact distance */
	MvivfScanCandidate *heap;
	int			nheap;
	int			heapCap;
	bool		returnedAny;
	double		lastDistance;	/* distance of the last row returned */
	double		errMargin;		/* how far an unreranked document's exact
								 * distance may fall below its approximate
								 * one (MvivfStatsMargin) */
	MvivfErrorStats errStats;	/* the sample errMargin was fitted on */
	MvivfErrorStats headStats;	/* errors of the second half of the
								 * documents reranked in approximate order */
	MvivfErrorStats sampleStats;	/* errors of the random rerank sample */
	/* approximate - exact distance of each reranked row, in rerank order */
	double	   *overshoot;
	int			novershoot;
	int			overshootCap;
	int			stopReason;		/* MVIVF_STOP_*: why reranking last stopped */
	/* the same for a random sample of the unreranked documents */
	double	   *sampleErr;
	int			nsampleErr;
	bool		sampleDrawn;	/* RerankSample drew it (or gave up) */
	int			sampling;		/* MVIVF_SAMPLING_*: which sample the batch
								 * being reranked is */
	struct HTAB *seenErrors;	/* (approximate, exact) distances reranked,
								 * each counted once (MvivfErrorSeen) */
	double		gainMargin;		/* bound of the residual gain of an
								 * unrefined document (MvivfRefineCandidates) */
	MvivfErrorStats gainStats;	/* the sample gainMargin was fitted on */
	MvivfGainFit gainFit;		/* the same sample's gains against their
								 * centroid interaction */

	/*
	 * The errors of the quantized MaxSim of the gain sample's documents
	 * (the first MVIVF_GAIN_RERANK drawn), the model of an unrefined
	 * document's error; measured once an unrefined document could beat a
	 * row (RerankGainSample).  NULL isGainRerank: no gain sample.
	 */
	bool	   *isGainRerank;	/* per document id */
	double	   *gainErr;
	int			ngainErr;
	bool		gainErrMeasured;
	MvivfErrorStats gainErrStats;

	/*
	 * The gains of the last MVIVF_EDGE_SAMPLE documents refined in order of
	 * centroid interaction (a ring), and their statistics: the model of
	 * the gains of the unrefined documents that come next in that order.
	 */
	double	   *edgeGain;
	int			nedgeGain;		/* gains ever added to the ring */
	MvivfErrorStats edgeStats;
	/* counters (DEBUG1 at the end of the scan) */
	int			nreranked;
	int			ninvisible;
	int			nskipped;		/* better than a row already returned */
	int			npasses;		/* passes of the approximate stage */
	uint64		ntokens;		/* tokens scored by the centroid interaction */
	int			nrefined;		/* documents scored from residual codes */
	uint64		npages;			/* index pages read by the approximate stage */
	uint64		nprobed;		/* document lists probed (summed over rows' passes) */
	uint64		npostings;		/* their entries read */
	int			ntail;			/* unlisted documents (inserted after the build) */
	int			nexact;			/* listed documents whose exact centroid
								 * interaction was computed */
	bool		pruned;			/* centroid scores bounded from the lists */
	bool	   *ciExact;		/* per document: is ciScore exact? */
	bool	   *forced;			/* per document: reranked first because of
								 * MVIVF_DOC_RERANK (NULL: none is) */
	int			nforced;
	uint32		nextNull;		/* where the search for the next document
								 * flagged MVIVF_DOC_NULL goes on */
	int			nnulls;			/* such rows returned */
	/* heap access for the exact rerank */
	IndexFetchTableData *fetch;
	TupleTableSlot *slot;
	EState	   *estate;
	IndexInfo  *indexInfo;
	/* doc directory snapshot */
	MvivfDocEntry *docs;
	uint32		ndocs;
	/* where each document's codes start in the forward store */
	BlockNumber *startBlock;
	uint16	   *startOffset;
	/* approximate stage */
	MvivfMetaPageData meta;
	int			perPass;		/* query rows per pass */
	bool		byteTables;		/* code tables per byte (else per nibble) */
	bool		int8Codes;		/* quantized MaxSim in int8 (AMX or VNNI) instead */
	double	   *ciScore;		/* centroid interaction, per document id */
	MvivfApproxState tables;	/* the tables of a one-pass query, else zero */
}			MvivfScanOpaqueData;

typedef MvivfScanOpaqueData * MvivfScanOpaque;

/* mvmargin.c: candidate order, error margins, random samples */
extern int	MvivfCandCmp(const MvivfScanCandidate * x, const MvivfScanCandidate * y);
extern int	MvivfCandQsortCmp(const void *a, const void *b);
extern void MvivfSortCands(MvivfScanCandidate * cands, int n);
extern void MvivfSortChangedPrefix(MvivfScanCandidate * cands, int m, int n);
extern void MvivfErrorStatsOf(const double *x, int n, MvivfErrorStats * s);
extern double MvivfStatsMargin(const MvivfErrorStats * s, double nrem);
extern double MvivfSumMargin(const MvivfErrorStats * a, const MvivfErrorStats * b,
							 double nrem);
extern void MvivfSampleToFront(MvivfScanOpaque so, int lo, int hi, int k);
extern int	MvivfMarkedToFront(MvivfScanOpaque so, int lo, int hi, const bool *marked);
extern const MvivfErrorStats *MvivfUnrefinedErrStats(MvivfScanOpaque so);
extern void MvivfFitGain(const double *x, const double *gain, int n, MvivfGainFit * fit);
extern bool MvivfErrorSeen(MvivfScanOpaque so, double approx, double exact);
extern bool MvivfMayStop(MvivfScanOpaque so, double top, bool *unrefinedFirst);

/* mvrank.c: the approximate stage of an ordered scan */
extern void MvivfRefineCandidates(IndexScanDesc scan, int from, int to,
								  int sortFrom, int sampleFrom);
extern void MvivfApproximateStage(IndexScanDesc scan, MvivfMetaPageData * meta);
extern void MvivfExactCentroids(IndexScanDesc scan, int from, int k);

/* mvexplain.c */
extern void MvivfExplainInit(void);
extern void MvivfExplainRecord(Relation index, MvivfScanOpaque so);

/* mvivf.c */
extern MvivfOptions * MvivfGetOptions(Relation index);

/* mvscratch.c */
extern void *MvivfScratchAlloc(Size size, int flags);

/* mvutils.c */
extern int	MvivfFloatCmp(const void *a, const void *b);
extern bool MvivfMetaHasForcedCount(Page metapage);
extern Buffer MvivfNewBuffer(Relation index, ForkNumber forkNum);
extern void MvivfInitPage(Page page, uint16 flags);
extern void MvivfReadMeta(Relation index, MvivfMetaPageData * meta);
extern void MvivfLoadQuantizer(Relation index, MvivfMetaPageData * meta,
							   MvivfQuantizer * q);
extern void MvivfAppendPostings(Relation index, MvivfPosting * postings,
								int npostings, int codeSize,
								MvivfListEntry * listdir);
extern void MvivfWriteListDir(Relation index, MvivfMetaPageData * meta,
							  MvivfListEntry * listdir);
extern MvivfListEntry *MvivfReadListDir(Relation index, MvivfMetaPageData * meta);
extern MvivfDocEntry *MvivfReadDocDir(Relation index, MvivfMetaPageData * meta,
									  uint32 *ndocs);
extern void MvivfCheckDim(Relation index, int indexDim, int valueDim);
extern void MvivfCheckSupportedDim(Relation index, int dim);
extern MultiVector *MvivfDatumGetValue(Datum value);
extern uint16 MvivfDocFlagsOf(const MultiVector *mv);
extern int	MvivfIndexFormat(Relation index);
extern MultiVector *MvivfQueryGetValue(Relation index, Datum value);
extern double MvivfExactDistance(IndexScanDesc scan, Datum value);
extern int	MvivfPostingCmp(const void *a, const void *b);

/* mvdrift.c */
extern float MvivfDriftScore(const MvivfQuantizer * q, const float *rows,
							 int n, const uint32 *lists, const uint8 *codes);
extern float MvivfDriftLimit(float *scores, uint32 n);

/* mvquantizer.c */
extern void MvivfTrainQuantizer(MvivfQuantizer * q, float *sample, int64 n,
								int iters, pg_prng_state *prng, float *scores);
extern int	MvivfBlasSingleThread(void);
extern void MvivfBlasRestore(int threads);
extern const MvivfQuantizer * MvivfGetQuantizer(Relation index,
											   MvivfMetaPageData * meta,
											   bool forAssign);
extern void MvivfScoreCentroids(const MvivfQuantizer * q, const float *rows,
								int nrows, float *scores);
extern void MvivfScoreCentroidsTransposed(const MvivfQuantizer * q,
										  const float *rows, int nrows,
										  float *scores, int ld);
extern void MvivfPrepareCoarse(MvivfQuantizer * q);
extern void MvivfFreeCoarse(MvivfQuantizer * q);
/* mvassign.c: do assignments run on AMX-BF16 tiles (CPU and kernel allow)? */
extern bool MvivfUseAmx(void);
/* mvassign.c: does this CPU have AVX-512F (x86-64 builds with GCC/clang)? */
extern bool MvivfCpuHasAvx512(void);

/* The first 64-byte boundary in a buffer allocated with 64 spare bytes. */
static inline uint32 *
MvivfAmxAligned(uint32 *p)
{
	return (uint32 *) TYPEALIGN(64, p);
}

extern void MvivfAssignEncode(const MvivfQuantizer * q, const float *rows,
							  int nrows, uint32 *lists, uint8 *codes,
							  float *scratch);

/* access method callbacks */
extern IndexBuildResult *mvivfbuild(Relation heap, Relation index,
									IndexInfo *indexInfo);
extern void mvivfbuildempty(Relation index);
extern bool mvivfinsert(Relation index, Datum *values, bool *isnull,
						ItemPointer heap_tid, Relation heap,
						IndexUniqueCheck checkUnique,
#if PG_VERSION_NUM >= 140000
						bool indexUnchanged,
#endif
						IndexInfo *indexInfo);
extern IndexBulkDeleteResult *mvivfbulkdelete(IndexVacuumInfo *info,
											  IndexBulkDeleteResult *stats,
											  IndexBulkDeleteCallback callback,
											  void *callback_state);
extern IndexBulkDeleteResult *mvivfvacuumcleanup(IndexVacuumInfo *info,
												 IndexBulkDeleteResult *stats);
extern IndexScanDesc mvivfbeginscan(Relation index, int nkeys, int norderbys);
extern void mvivfrescan(IndexScanDesc scan, ScanKey keys, int nkeys,
						ScanKey orderbys, int norderbys);
extern bool mvivfgettuple(IndexScanDesc scan, ScanDirection dir);
extern void mvivfendscan(IndexScanDesc scan);
extern void mvivfcostestimate(PlannerInfo *root, IndexPath *path,
							  double loop_count, Cost *indexStartupCost,
							  Cost *indexTotalCost,
							  Selectivity *indexSelectivity,
							  double *indexCorrelation, double *indexPages);
extern bool mvivfvalidate(Oid opclassoid);

/* mvtables.c */
extern void MvivfBuildQueryTables(const MvivfQuantizer * q,
								  const MultiVector *query, int first,
								  MvivfApproxState * st);

/* mvapprox.c */
extern void MvivfCentroidTokens(const MvivfApproxState * st, float *acc,
								const char *lists, int n);
extern void MvivfScoreTokens(const MvivfApproxState * st, int16 *acc,
							 int16 *ciAcc, const char *lists,
							 const uint8 *codes, int n);
extern bool MvivfUseInt8Codes(const MvivfQuantizer * q);
extern const char *MvivfInt8CodesName(void);
extern void MvivfPrepareInt8Codes(const MvivfQuantizer * q,
								 const MultiVector *query, int first,
								 MvivfApproxState * st);
extern void MvivfScoreTokensInt8(const MvivfApproxState * st, float *acc,
								float *ciAcc, const char *lists,
								const uint8 *codes, int n);
extern void MvivfProbeEntries(float *acc, int nqPad, const float *v,
							  const uint32 *ids, int n, uint32 limit);

/* forward store of token codes (mvforward.c) */
extern void MvivfAppendForward(Relation index, Buffer metabuf, uint32 docid,
							   int n, const uint32 *lists, const uint8 *codes,
							   int codeSize);
extern Buffer MvivfReadForwardPage(Relation index, BlockNumber blkno,
								   char **start, char **end);
extern bool MvivfNextGroup(Relation index, BlockNumber blkno, char **p,
						   char *end, int codeSize, MvivfForwardGroup * group,
						   char **tokens);

/* document lists (mvdoclists.c) */
extern void MvivfCollectDocLists(Relation index, MvivfMetaPageData * meta,
								 uint32 ndocs, uint32 **offsets,
								 uint32 **entries, uint64 *nentries,
								 MvivfDocLocation * *locs);
extern uint32 *MvivfReadDocListDir(Relation index, MvivfMetaPageData * meta);
extern void MvivfScanDocList(Relation index, MvivfMetaPageData * meta,
							 uint32 from, uint32 to,
							 void (*fn) (void *arg, const uint32 *ids, int n),
							 void *arg, uint64 *npages, Buffer *pinned);
extern void MvivfReadDocLocation(Relation index, MvivfMetaPageData * meta,
								 uint32 doc, BlockNumber *block,
								 uint16 *offset);

/* merge of the pending area into the lists (mvvacuum.c) */
extern void MvivfMergePending(Relation index);

#endif							/* MVIVF_H */
