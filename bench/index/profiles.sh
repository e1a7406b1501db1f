#!/usr/bin/env bash
# The corpus shapes of bench/index/gen.c that corpora.sh measures and
# attack.sh builds on (sourced by both).

# Profiles: the traits real ColPali pages have in different measure.
#  rows:   the original generator: 512 topics, 4 per page, 40% background rows,
#          content rows at cosine ~0.64 to their topic, query rows near rows
#          of one target page.
#  topics: content rows at cosine ~0.75 to their topic (256 topics), query rows
#          spread around the target's topic centres (cosine ~0.70), so the
#          true top pages are every page sharing topics, ranked by many
#          moderate matches.
#  own:    as topics, but 4,096 topics, so that a page's topics are nearly
#          its own: beyond the target page, the true top pages share no topic
#          with the query and rank through many moderate matches.
#  loose:  few topics (64, 6 per page), 60% background, loose content (~0.58)
#          and query rows (~0.64), 10% of query rows about unrelated topics.
#  hard:   the shape of a corpus the project did not generate: 40% background
#          rows shared by all pages, content rows at cosine ~0.75 to their
#          topic, query rows at ~0.70 to the target's topics, and topics in
#          families of 8 related ones (cosine ~0.56 between siblings), so that
#          a share of the true top 10 (column noshare) shares no topic with
#          the query and ranks through many moderate matches.
#  hard-bg: as hard, 60% background rows.
#  hard-q:  as hard, query rows looser still (~0.60 to the topic).
#  hard-fam: as hard, closer families (~0.72 between siblings): more of the
#          true top 10 share no topic with the query.
# Further shapes (not in the default list; name them in PROFILES), each the
# hard profile with one trait of real collections that bench/index/attack.sh
# checks against the ORDER BY / LIMIT contract as well:
#  colqwen: ColQwen2-like pages of 300-1,300 rows, a tenth of them 10-50 rows.
#  qshort:  queries of 1-4 rows.          qlong: 48-64 rows, a fifth repeated.
#  dups:    half the pages exact copies of 20 pages (ties at the 10th place).
#  blank:   80% of the pages one identical page of background rows.
# the hard profile, and the page lengths of the colqwen one
HARD="GEN_NTOPICS=512 GEN_BG_SHARE=0.4 GEN_CONTENT_NOISE=0.88 GEN_QUERY_FROM=topic GEN_QUERY_NOISE=1.02 GEN_FAMILY_SIZE=8 GEN_FAMILY_COS=0.75"
VARROWS="GEN_ROWS_MIN=300 GEN_ROWS_MAX=1300 GEN_TINY_SHARE=0.1"

# profile_env NAME: the gen.c environment of a profile
profile_env() {
	case "$1" in
		rows) echo "" ;;
		topics) echo "GEN_NTOPICS=256 GEN_CONTENT_NOISE=0.88 GEN_QUERY_FROM=topic GEN_QUERY_NOISE=1.02" ;;
		own) echo "GEN_NTOPICS=4096 GEN_CONTENT_NOISE=0.88 GEN_QUERY_FROM=topic GEN_QUERY_NOISE=1.02" ;;
		loose) echo "GEN_NTOPICS=64 GEN_TOPICS_PER_DOC=6 GEN_BG_SHARE=0.6 GEN_CONTENT_NOISE=1.4 GEN_QUERY_FROM=topic GEN_QUERY_NOISE=1.2 GEN_QUERY_OFFTOPIC=0.1" ;;
		hard) echo "$HARD" ;;
		hard-bg) echo "$HARD GEN_BG_SHARE=0.6" ;;
		hard-q) echo "$HARD GEN_QUERY_NOISE=1.33" ;;
		hard-fam) echo "$HARD GEN_FAMILY_COS=0.85" ;;
		colqwen) echo "$HARD $VARROWS" ;;
		qshort) echo "$HARD GEN_QROWS_MIN=1 GEN_QROWS_MAX=4" ;;
		qlong) echo "$HARD GEN_QROWS_MIN=48 GEN_QROWS_MAX=64 GEN_QUERY_REPEAT=0.2" ;;
		dups) echo "$HARD GEN_DUP_SHARE=0.5 GEN_DUP_SOURCES=20" ;;
		blank) echo "$HARD GEN_BLANK_SHARE=0.8" ;;
		*) echo "unknown profile $1" >&2; exit 2 ;;
	esac
}
