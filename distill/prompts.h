/* Prompt building: reads data.inputs (JSONL, CSV/TSV through libcsv, plain text, folders of
 * .md/.txt documents chunked at heading and paragraph boundaries), drops exact duplicates after
 * whitespace/case normalisation, assigns each prompt a stable split from a hash of its
 * normalised text and data.seed, and stores them in the workspace. */
#ifndef US_DISTILL_PROMPTS_H
#define US_DISTILL_PROMPTS_H

#include <stdint.h>

#include "cache/cache.h"
#include "pipeline/config.h"

typedef struct us_prompts_stats {
  int64_t read;        /* records read from all inputs */
  int64_t added;       /* new prompts stored */
  int64_t existing;    /* already in the workspace from an earlier run */
  int64_t duplicates;  /* dropped as duplicates of another record in this run */
  int64_t empty;       /* records with empty text, skipped */
  int64_t repaired;    /* records whose invalid UTF-8 was repaired (data.repair_utf8) */
  int64_t train, test; /* split of all prompts now in the workspace */
  int64_t chunks;      /* document chunks kept for self-instruct (generate from "docs") */
} us_prompts_stats;

/* Loads every input of c into cache. Idempotent: a rerun adds only new prompts. Errors name the
 * file and line (invalid UTF-8, a missing text field, a malformed JSON line, an unreadable
 * file). */
us_status us_prompts_build(const us_config *c, us_cache *cache, us_prompts_stats *stats,
                           us_err *err);

/* Loads every input of c into cache. For task generate, an input of format "docs" gives document
 * chunks (us_prompt kind US_PROMPT_KIND_CHUNK), which the teacher turns into questions (see
 * us_prompts_add_questions); other inputs and other tasks give prompts. */

/* Parses the teacher's list of questions: one per non-empty line, without list markers ("1.",
 * "1)", "Q1:", "-", "*", "•") or surrounding quotes; lines ending in ':' (a preamble such as
 * "Here are 3 questions:") are skipped; at most max are kept. *out is an array of *n strings;
 * caller frees each and the array. */
us_status us_questions_parse(const char *answer, int max, char ***out, int *n, us_err *err);

/* Stores the questions the teacher wrote about chunk (its answer, as text) as prompts: text the
 * question, context the chunk's text, split the chunk's (so a test chunk's questions are never
 * trained on), source "<chunk source>/qK". Idempotent: a question already stored is kept as it
 * is. *added (may be NULL) receives the number of new prompts. */
us_status us_prompts_add_questions(const us_config *c, us_cache *cache, const us_prompt *chunk,
                                   const char *answer, int64_t *added, us_err *err);

/* Lower-cases ASCII, folds runs of Unicode/ASCII white space to one space, trims. Caller frees. */
char *us_prompt_normalize(const char *text);
/* SHA-256 hex of the normalised text. */
void us_prompt_hash(const char *normalized, char hash[65]);
/* US_SPLIT_TEST or US_SPLIT_TRAIN from a hash of the normalised text and seed; adding prompts
 * never moves an existing one. */
int us_prompt_split(const char *normalized, uint64_t seed, double test_fraction);

#endif
