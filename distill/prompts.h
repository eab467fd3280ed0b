/* Prompt building: reads data.inputs (JSONL, CSV/TSV through libcsv, plain text, folders of
 * .md/.txt documents chunked at heading and paragraph boundaries), drops exact duplicates after
 * whitespace/case normalisation, assigns each prompt a stable split from a hash of its
 * normalised text and data.seed, and stores them in the workspace. */
#ifndef US_DISTILL_PROMPTS_H
#define US_DISTILL_PROMPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "core/params.h"
#include "core/status.h"
#include "core/task.h"

/* One input of data.inputs. */
typedef struct us_input {
  char *path;     /* resolved file or folder */
  us_split split; /* "split": "train" | "test" pins every prompt of this input; else AUTO */
  char *format;   /* "jsonl" | "csv" | "tsv" | "text" | "docs"; NULL: guess from the extension */
} us_input;

/* What prompt building reads and how (the config's data.* keys). Strings and inputs belong to
 * whoever filled the struct (the config owns and frees them); prompts only reads them. */
typedef struct us_prompts_params {
  us_input *inputs; /* >= 1 for us_prompts_build */
  int n_inputs;
  char *text_field;        /* NULL: US_PROMPTS_DEFAULT_TEXT_FIELD */
  char *label_field;       /* gold label field; NULL: "label" when a record has one */
  char *id_field;          /* NULL: none */
  double test_fraction;    /* share of prompts in the test split */
  uint64_t seed;           /* of the split hash */
  int chunk_chars;         /* most characters in a document chunk */
  bool repair_utf8;        /* false: invalid UTF-8 is an error; true: replaced by U+FFFD */
  int questions_per_chunk; /* generate from docs: questions asked per chunk */
  char *question_template; /* generate from docs: {chunk}, {n}; must hold {chunk} */
  char *answer_template;   /* generate from docs: {chunk}, {question}; must hold {question} */
  bool dedupe_near;        /* move near-duplicates across train and test to the test split */
} us_prompts_params;

/* The string defaults, which us_prompts_params_defaults leaves NULL for the owner to copy. */
#define US_PROMPTS_DEFAULT_TEXT_FIELD "text"
#define US_PROMPTS_DEFAULT_ID_FIELD "id"
#define US_PROMPTS_DEFAULT_QUESTION_TEMPLATE                                                 \
  "Here is a passage from a document:\n\n{chunk}\n\nWrite {n} different questions that the " \
  "passage answers. Put each question on its own line, without numbering."
#define US_PROMPTS_DEFAULT_ANSWER_TEMPLATE                                               \
  "Answer the question using only the passage below.\n\nPassage:\n{chunk}\n\nQuestion: " \
  "{question}"

/* Every number and flag at its default; strings and inputs NULL. */
void us_prompts_params_defaults(us_prompts_params *p);
/* The numeric fields with their ranges (static; *n receives the count). */
const us_param *us_prompts_param_table(size_t *n);
/* The table's ranges, then: the templates (when set) hold {chunk} and {question}. Messages
 * start with the field name ("chunk_chars: expected an integer in [200, 100000], found 10"). */
us_status us_prompts_params_check(const us_prompts_params *p, us_err *err);

typedef struct us_prompts_stats {
  int64_t read;            /* records read from all inputs */
  int64_t added;           /* new prompts stored */
  int64_t existing;        /* already in the workspace from an earlier run */
  int64_t duplicates;      /* dropped as duplicates of another record in this run */
  int64_t empty;           /* records with empty text, skipped */
  int64_t repaired;        /* records whose invalid UTF-8 was repaired (data.repair_utf8) */
  int64_t train, test;     /* split of all prompts now in the workspace */
  int64_t chunks;          /* document chunks kept for self-instruct (generate from "docs") */
  int64_t near_duplicates; /* prompts with a near-duplicate in the other split (before moving) */
  int64_t near_moved;      /* train prompts moved to the test split by data.dedupe_near */
  double near_seconds;     /* time the near-duplicate search took */
} us_prompts_stats;

/* Loads every input of data into cache. Idempotent: a rerun adds only new prompts. Errors name
 * the file and line (invalid UTF-8, a missing text field, a malformed JSON line, an unreadable
 * file). For task generate, an input of format "docs" gives document chunks (us_prompt kind
 * US_PROMPT_KIND_CHUNK), which the teacher turns into questions (see us_prompts_add_questions);
 * other inputs and other tasks give prompts. Sources are stored relative to base_dir (the
 * config's folder) when they lie inside it; base_dir NULL keeps them as given. */
us_status us_prompts_build(const us_task *task, const us_prompts_params *data, const char *base_dir,
                           us_cache *cache, us_prompts_stats *stats, us_err *err);

/* Parses the teacher's list of questions: one per non-empty line, without list markers ("1.",
 * "1)", "Q1:", "-", "*", "•") or surrounding quotes; lines ending in ':' (a preamble such as
 * "Here are 3 questions:") are skipped; at most max are kept. *out is an array of *n strings;
 * caller frees each and the array. */
us_status us_questions_parse(const char *answer, int max, char ***out, int *n, us_err *err);

/* Stores the questions the teacher wrote about chunk (its answer, as text) as prompts: text the
 * question, context the chunk's text, split the chunk's (so a test chunk's questions are never
 * trained on), source "<chunk source>/qK". Idempotent: a question already stored is kept as it
 * is. *added (may be NULL) receives the number of new prompts. */
us_status us_prompts_add_questions(const us_prompts_params *data, us_cache *cache,
                                   const us_prompt *chunk, const char *answer, int64_t *added,
                                   us_err *err);

/* Lower-cases ASCII, folds runs of Unicode/ASCII white space to one space, trims. Caller frees. */
char *us_prompt_normalize(const char *text);
/* SHA-256 hex of the normalised text. */
void us_prompt_hash(const char *normalized, char hash[65]);
/* US_SPLIT_TEST or US_SPLIT_TRAIN from a hash of the normalised text and seed; adding prompts
 * never moves an existing one. */
int us_prompt_split(const char *normalized, uint64_t seed, double test_fraction);

#endif
