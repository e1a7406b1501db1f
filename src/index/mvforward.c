/*
 * mvforward.c
 *	  The forward store of an mvivf index: every document's token codes
 *	  (centroid number and residual code), in groups per document.
 *
 * The approximate stage of a scan reads a document's centroid numbers for
 * its centroid interaction (sum over query rows of the maximum over its
 * tokens of query row . centroid), and the codes too for the documents it
 * refines (the maximum of query row . centroid + query row . decoded
 * residual: the document's MaxSim on its quantized tokens).  Since format
 * version 4 a document's centroid numbers are written apart from its codes
 * (all its LISTS groups, then its CODES groups), so that the first reads
 * 2 bytes a token from one or two pages instead of every page of the
 * document; versions 2-3 wrote mixed TOKENS groups, and inserts into such
 * an index still do, so that its pages stay those of its version.  Builds
 * and inserts append to
 * the chain's tail; a document's groups always come after its directory
 * entry, so a scan never attributes codes to the wrong document (a group
 * whose document is not in the scan's directory snapshot, or is dead, is
 * skipped).  VACUUM does not reclaim the groups of dead documents; REINDEX
 * does.
 */
#include "postgres.h"

#include "access/generic_xlog.h"
#include "storage/bufmgr.h"

#include "mvivf.h"
#include "recent_buffer.h"

/*
 * MvivfAppendForward
 *		Append the codes of document docid (n tokens) to the forward store;
 *		metabuf is exclusively locked by the caller.  Each generic WAL record
 *		holds the metapage and at most three data pages, so the chain's tail
 *		in the metapage always matches the pages.
 */
void
MvivfAppendForward(Relation index, Buffer metabuf, uint32 docid, int n,
				   const uint32 *lists, const uint8 *codes, int codeSize)
{
	bool		split = MvivfPageGetMeta(BufferGetPage(metabuf))->version >= MVIVF_SPLIT_VERSION;
	int			kind = split ? MVIVF_GROUP_LISTS : MVIVF_GROUP_TOKENS;
	int			i = 0;

	/* split: every centroid number (i < n), then every code (n <= i < 2n) */
	while (i < (split ? 2 * n : n))
	{
		GenericXLogState *state = GenericXLogStart(index);
		MvivfMetaPage meta = MvivfPageGetMeta(GenericXLogRegisterBuffer(state, metabuf, 0));
		Buffer		bufs[MAX_GENERIC_XLOG_PAGES];
		int			nbufs = 0;
		Page		page = NULL;
		int			j;

		if (meta->forwardTail != InvalidBlockNumber)
		{
			bufs[nbufs] = ReadBuffer(index, meta->forwardTail);
			LockBuffer(bufs[nbufs], BUFFER_LOCK_EXCLUSIVE);
			page = GenericXLogRegisterBuffer(state, bufs[nbufs], 0);
			nbufs++;
		}
		while (i < (split ? 2 * n : n))
		{
			PageHeader ph = (PageHeader) page;
			Size		room = page ? ph->pd_upper - ph->pd_lower : 0;
			int			first = (kind == MVIVF_GROUP_CODES) ? i - n : i;
			Size		tokSize = MvivfGroupTokenSize(kind, codeSize);
			MvivfForwardGroup group;
			char	   *dst;
			int			k;
			int			t;

			if (page == NULL || room < sizeof(MvivfForwardGroup) + tokSize)
			{
				Buffer		nbuf;
				Page		npage;

				if (nbufs + 1 >= MAX_GENERIC_XLOG_PAGES)
					break;		/* the metapage takes one slot */
				nbuf = MvivfNewBuffer(index, MAIN_FORKNUM);
				npage = GenericXLogRegisterBuffer(state, nbuf, GENERIC_XLOG_FULL_IMAGE);
				MvivfInitPage(npage, MVIVF_FORWARD);
				if (page != NULL)
					MvivfPageGetOpaque(page)->next = BufferGetBlockNumber(nbuf);
				else
					meta->forwardHead = BufferGetBlockNumber(nbuf);
				meta->forwardTail = BufferGetBlockNumber(nbuf);
				bufs[nbufs++] = nbuf;
				page = npage;
				continue;
			}
			k = Min(n - first, (int) ((room - sizeof(MvivfForwardGroup)) / tokSize));
			k = Min(k, PG_UINT16_MAX);
			group.docid = docid;
			group.ntokens = k;
			group.kind = kind;
			dst = (char *) page + ph->pd_lower;
			memcpy(dst, &group, sizeof(group));
			dst += sizeof(group);
			if (kind != MVIVF_GROUP_CODES)
			{
				/* the group's centroid numbers */
				for (t = 0; t < k; t++)
				{
					uint16		list = (uint16) lists[first + t];

					memcpy(dst, &list, sizeof(uint16));
					dst += sizeof(uint16);
				}
			}
			if (kind != MVIVF_GROUP_LISTS)
				memcpy(dst, codes + (Size) first * codeSize, (Size) k * codeSize);
			ph->pd_lower += sizeof(group) + k * tokSize;
			MvivfPageGetOpaque(page)->nitems++;
			i += k;
			if (kind != MVIVF_GROUP_CODES)
				meta->ntokens += k;
			if (split && i == n)
				kind = MVIVF_GROUP_CODES;
		}
		GenericXLogFinish(state);
		for (j = 0; j < nbufs; j++)
			UnlockReleaseBuffer(bufs[j]);
	}
}

/*
 * MvivfReadForwardPage
 *		Pin and share-lock a forward page, checking its kind.
 */
Buffer
MvivfReadForwardPage(Relation index, BlockNumber blkno, char **start, char **end)
{
	Buffer		buf = ReadBufferRecent(index, blkno);
	Page		page;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (!(MvivfPageGetOpaque(page)->flags & MVIVF_FORWARD) ||
		((PageHeader) page)->pd_lower > ((PageHeader) page)->pd_upper ||
		((PageHeader) page)->pd_lower < MAXALIGN(SizeOfPageHeaderData))
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has a malformed forward page %u",
						RelationGetRelationName(index), blkno)));
	*start = MvivfPageItems(page);
	*end = (char *) page + ((PageHeader) page)->pd_lower;
	return buf;
}

/*
 * MvivfNextGroup
 *		Read the group header at *p (within [.., end)) and advance *p past
 *		the group, whose tokens start at *tokens (their size follows the
 *		group's kind); false at the end of the page.
 */
bool
MvivfNextGroup(Relation index, BlockNumber blkno, char **p, char *end, int codeSize,
			   MvivfForwardGroup * group, char **tokens)
{
	if (*p + sizeof(MvivfForwardGroup) > end)
		return false;
	memcpy(group, *p, sizeof(MvivfForwardGroup));
	*tokens = *p + sizeof(MvivfForwardGroup);
	if (group->kind > MVIVF_GROUP_CODES ||
		*tokens + (Size) group->ntokens * MvivfGroupTokenSize(group->kind, codeSize) > end)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" has a malformed forward page %u",
						RelationGetRelationName(index), blkno)));
	*p = *tokens + (Size) group->ntokens * MvivfGroupTokenSize(group->kind, codeSize);
	return true;
}
