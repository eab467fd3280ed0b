/* Internals shared by the prompt loaders (distill/prompts.c and distill/load_*.c): the sink every
 * loader hands its records to, the line reader and its UTF-8 check, and the document chunker.
 * Not a public header. */
#ifndef US_DISTILL_PROMPTS_INT_H
#define US_DISTILL_PROMPTS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "distill/prompts.h"

/* Everything a loader needs to store what it reads. One per us_prompts_build call. */
typedef struct us__prompt_sink {
  const us_prompts_params *data;
  const char *base_dir; /* sources are shown relative to it; NULL: as given */
  us_cache *cache;
  us_prompts_stats *stats;
  unsigned char *met; /* one bit per prompt row id: met in this run (exact duplicates) */
  size_t met_cap;     /* bytes */
  int split;          /* the input's pinned split, or US_SPLIT_AUTO */
  int kind;           /* us_prompt_kind of what this input's records become */
  const char *source; /* the current file, relative to the config folder when possible */
} us__prompt_sink;

/* Normalises, dedupes, assigns the split and stores one record. text must be valid UTF-8 (the
 * loaders check first). Empty text (after normalisation) is counted and skipped. gold may be
 * NULL. where is "file:line" or "file#chunkN". Counts stats->read. */
us_status us__prompt_emit(us__prompt_sink *sink, const char *text, size_t len, const char *gold,
                          const char *where, us_err *err);

/* The path shown in sources and messages: path relative to base_dir (the config's folder) when
 * it lies inside it, else path itself. The result points into path. */
const char *us__prompt_display_path(const char *base_dir, const char *path);

/* Reads lines one by one (any length), stripping a UTF-8 BOM from the first line and the
 * trailing "\n" or "\r\n". */
typedef struct us__line_reader {
  void *file; /* FILE* */
  char *line; /* getline's buffer */
  size_t cap;
  long number; /* 1-based number of the line last read */
} us__line_reader;
us_status us__lines_open(us__line_reader *r, const char *path, const char *shown, us_err *err);
/* Returns 1 with *line and *len set, 0 at end of file, -1 on a read error (err set). */
int us__lines_next(us__line_reader *r, const char *shown, char **line, size_t *len, us_err *err);
void us__lines_close(us__line_reader *r);

/* Checks one line for invalid UTF-8: returns it unchanged when valid; with data.repair_utf8
 * returns a repaired copy in scratch (and sets *repaired); otherwise fails naming shown:line. */
us_status us__line_checked(const us_prompts_params *data, const char *shown, long line_number,
                           char **line, size_t *len, us_buf *scratch, bool *repaired, us_err *err);

/* Splits a document into chunks of at most max_chars code points at heading (markdown only)
 * and paragraph boundaries; a longer paragraph is split at sentence, then word, then character
 * boundaries. fn receives each chunk (NUL-terminated, valid while fn runs) with its 1-based
 * number; a non-OK return stops the split and is returned. */
typedef us_status (*us__chunk_fn)(void *user, const char *chunk, size_t len, int number,
                                  us_err *err);
us_status us__chunk_document(const char *text, size_t len, bool markdown, int max_chars,
                             us__chunk_fn fn, void *user, us_err *err);

/* The loaders: each reads one file (or folder, for docs) into sink. */
us_status us__load_jsonl(us__prompt_sink *sink, const char *path, us_err *err);
us_status us__load_text(us__prompt_sink *sink, const char *path, us_err *err);
us_status us__load_csv(us__prompt_sink *sink, const char *path, char delimiter, us_err *err);
us_status us__load_docs(us__prompt_sink *sink, const char *path, us_err *err);

/* Finds the prompts with a near-duplicate in the other split (distill/neardup.h) and, with
 * data->dedupe_near, moves every train prompt of a group that spans both splits to the test
 * split; records the counts in stats and in the workspace (result "near_duplicates"). */
us_status us__prompts_near_duplicates(const us_prompts_params *data, us_cache *cache,
                                      us_prompts_stats *stats, us_err *err);

#endif
