/* Document folders: finds the .md/.txt files under a folder (recursively, in sorted order so the
 * result never depends on the file system), and cuts each into chunks at heading and paragraph
 * boundaries, splitting an over-long paragraph at sentence, then word boundaries. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/utf8.h"
#include "distill/prompts_int.h"

#define MAX_DOC_BYTES ((size_t)256 << 20)
#define MAX_DEPTH 64

/* ---- chunking ------------------------------------------------------------------------------- */

typedef enum { BLOCK_PARAGRAPH, BLOCK_HEADING } block_kind;

typedef struct block {
  size_t offset, len; /* into the arena */
  block_kind kind;
} block;

/* Packs blocks (or pieces of them) into chunks of at most max code points. */
typedef struct packer {
  us_buf chunk;
  size_t chars;  /* code points in chunk */
  bool has_body; /* chunk holds more than headings */
  int number;    /* chunks emitted so far */
  size_t max;
  us__chunk_fn fn;
  void *user;
  us_err *err;
} packer;

static us_status flush(packer *p) {
  if (!p->chunk.len) return US_OK;
  us_status st = p->fn(p->user, p->chunk.data, p->chunk.len, ++p->number, p->err);
  us_buf_reset(&p->chunk);
  p->chars = 0;
  p->has_body = false;
  return st;
}

static us_status add_piece(packer *p, block_kind kind, const char *s, size_t len, size_t chars) {
  us_status st = US_OK;
  /* A heading opens a new chunk unless the chunk so far is only headings (# A then ## B). */
  if (kind == BLOCK_HEADING && p->has_body) st = flush(p);
  if (!st && p->chunk.len && p->chars + 2 + chars > p->max) st = flush(p);
  if (st) return st;
  if (p->chunk.len && us_buf_append(&p->chunk, "\n\n", 2)) return US_ERR_NOMEM;
  if (us_buf_append(&p->chunk, s, len)) return US_ERR_NOMEM;
  p->chars += (p->chars ? 2 : 0) + chars;
  if (kind != BLOCK_HEADING) p->has_body = true;
  return US_OK;
}

static bool is_space_byte(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_closer(char c) {
  return c == '"' || c == '\'' || c == ')' || c == ']';
}

/* Finds the next unit of text[*pos..end) at a level (0 sentence, 1 word, 2 character) as the
 * trimmed span [*us, *ue); returns false when none is left. */
static bool next_unit(const char *text, size_t end, size_t *pos, int level, size_t *us,
                      size_t *ue) {
  size_t i = *pos;
  while (i < end && is_space_byte(text[i])) i++;
  if (i >= end) return false;
  *us = i;
  if (level == 2) {
    i++;
    while (i < end && US_UTF8_IS_CONTINUATION(text[i])) i++;
  } else if (level == 1) {
    while (i < end && !is_space_byte(text[i])) i++;
  } else {
    for (; i < end; i++) {
      if (text[i] == '\n') break;
      if (text[i] == '.' || text[i] == '!' || text[i] == '?') {
        size_t j = i + 1;
        while (j < end && is_closer(text[j])) j++;
        if (j == end || is_space_byte(text[j])) {
          i = j;
          break;
        }
      }
    }
  }
  *ue = i;
  *pos = i;
  return true;
}

/* Splits text[start..end) (longer than p->max) into pieces of at most p->max code points at
 * the boundaries of the level, falling to the next level for a unit that is still too long. */
static us_status split_long(packer *p, const char *text, size_t start, size_t end, int level) {
  size_t pos = start, us, ue, piece_s = 0, piece_e = 0, piece_chars = 0;
  bool have = false;
  us_status st = US_OK;
  while (!st && next_unit(text, end, &pos, level, &us, &ue)) {
    size_t chars = us_utf8_count(text + us, ue - us);
    if (chars > p->max) {
      if (have) st = add_piece(p, BLOCK_PARAGRAPH, text + piece_s, piece_e - piece_s, piece_chars);
      have = false;
      if (!st) st = split_long(p, text, us, ue, level + 1);
      continue;
    }
    size_t gap = have ? us_utf8_count(text + piece_e, us - piece_e) : 0;
    if (have && piece_chars + gap + chars > p->max) {
      st = add_piece(p, BLOCK_PARAGRAPH, text + piece_s, piece_e - piece_s, piece_chars);
      have = false;
    }
    if (!have) {
      piece_s = us;
      piece_chars = chars;
      have = true;
    } else {
      piece_chars += gap + chars;
    }
    piece_e = ue;
  }
  if (!st && have)
    st = add_piece(p, BLOCK_PARAGRAPH, text + piece_s, piece_e - piece_s, piece_chars);
  return st;
}

static size_t indent_of(const char *s, size_t len) {
  size_t i = 0;
  while (i < len && s[i] == ' ') i++;
  return i;
}

static bool is_atx_heading(const char *s, size_t len) {
  size_t i = indent_of(s, len), hashes = 0;
  if (i > 3) return false;
  while (i < len && s[i] == '#') i++, hashes++;
  return hashes >= 1 && hashes <= 6 && (i == len || s[i] == ' ' || s[i] == '\t');
}

static bool is_fence(const char *s, size_t len) {
  size_t i = indent_of(s, len);
  return i <= 3 && len - i >= 3 && (memcmp(s + i, "```", 3) == 0 || memcmp(s + i, "~~~", 3) == 0);
}

/* A line of only '=' or only '-' (at least two): a setext underline or a thematic break. */
static bool is_rule(const char *s, size_t len) {
  size_t i = indent_of(s, len);
  if (i > 3 || len - i < 2 || (s[i] != '=' && s[i] != '-')) return false;
  for (size_t k = i; k < len; k++)
    if (s[k] != s[i]) return false;
  return true;
}

typedef struct block_list {
  us_buf arena;
  block *items;
  size_t n, cap;
  bool open; /* the last block is a paragraph still taking lines */
} block_list;

static us_status block_start(block_list *b, block_kind kind) {
  if (b->n == b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 64;
    block *p = realloc(b->items, cap * sizeof *p);
    if (!p) return US_ERR_NOMEM;
    b->items = p;
    b->cap = cap;
  }
  b->items[b->n++] = (block){.offset = b->arena.len, .len = 0, .kind = kind};
  b->open = kind == BLOCK_PARAGRAPH;
  return US_OK;
}

static us_status block_line(block_list *b, const char *s, size_t len) {
  block *last = &b->items[b->n - 1];
  if (last->len && us_buf_append(&b->arena, "\n", 1)) return US_ERR_NOMEM;
  if (us_buf_append(&b->arena, s, len)) return US_ERR_NOMEM;
  last->len = b->arena.len - last->offset;
  return US_OK;
}

/* Cuts the text into heading and paragraph blocks; code fences stay whole. */
static us_status parse_blocks(const char *text, size_t len, bool markdown, block_list *b) {
  bool in_fence = false;
  size_t pos = 0;
  while (pos < len) {
    const char *line = text + pos;
    const char *nl = memchr(line, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - line) : len - pos;
    pos += n + (nl ? 1 : 0);
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) n--;
    bool fence = markdown && is_fence(line, n);
    if (in_fence || fence) {
      if (!b->open && block_start(b, BLOCK_PARAGRAPH)) return US_ERR_NOMEM;
      if (block_line(b, line, n)) return US_ERR_NOMEM;
      if (fence) in_fence = !in_fence;
      continue;
    }
    if (n == 0) {
      b->open = false;
    } else if (markdown && is_atx_heading(line, n)) {
      if (block_start(b, BLOCK_HEADING) || block_line(b, line, n)) return US_ERR_NOMEM;
      b->open = false;
    } else if (markdown && is_rule(line, n)) {
      /* under a paragraph: a setext heading; on its own: a break between sections */
      if (b->open) {
        b->items[b->n - 1].kind = BLOCK_HEADING;
        if (block_line(b, line, n)) return US_ERR_NOMEM;
      }
      b->open = false;
    } else {
      if (!b->open && block_start(b, BLOCK_PARAGRAPH)) return US_ERR_NOMEM;
      if (block_line(b, line, n)) return US_ERR_NOMEM;
    }
  }
  return US_OK;
}

us_status us__chunk_document(const char *text, size_t len, bool markdown, int max_chars,
                             us__chunk_fn fn, void *user, us_err *err) {
  if (max_chars < 1)
    return us_err_set(err, US_ERR_CONFIG, "data.chunk_chars: expected at least 1, found %d",
                      max_chars);
  block_list b = {0};
  us_buf_init(&b.arena, 0);
  packer p = {.max = (size_t)max_chars, .fn = fn, .user = user, .err = err};
  us_buf_init(&p.chunk, 0);
  us_status st = parse_blocks(text, len, markdown, &b);
  for (size_t i = 0; !st && i < b.n; i++) {
    const char *s = b.arena.data + b.items[i].offset;
    size_t n = b.items[i].len, chars = us_utf8_count(s, n);
    if (chars <= p.max)
      st = add_piece(&p, b.items[i].kind, s, n, chars);
    else
      st = split_long(&p, s, 0, n, 0);
  }
  if (!st) st = flush(&p);
  if (st == US_ERR_NOMEM && err && err->code != US_ERR_NOMEM)
    us_err_set(err, US_ERR_NOMEM, "out of memory while chunking a document");
  us_buf_free(&p.chunk);
  us_buf_free(&b.arena);
  free(b.items);
  return st;
}

/* ---- folders -------------------------------------------------------------------------------- */

typedef struct path_list {
  char **items;
  size_t n, cap;
} path_list;

static bool is_document(const char *name) {
  static const char *const exts[] = {".md", ".markdown", ".txt"};
  size_t n = strlen(name);
  for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
    size_t m = strlen(exts[i]);
    if (n > m && strcasecmp(name + n - m, exts[i]) == 0) return true;
  }
  return false;
}

static us_status list_push(path_list *l, char *path) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    char **p = realloc(l->items, cap * sizeof *p);
    if (!p) {
      free(path);
      return US_ERR_NOMEM;
    }
    l->items = p;
    l->cap = cap;
  }
  l->items[l->n++] = path;
  return US_OK;
}

/* Collects documents under dir; hidden entries (".git", ".cache") are skipped. */
static us_status walk(const char *dir, int depth, path_list *out, us_err *err) {
  if (depth > MAX_DEPTH)
    return us_err_set(err, US_ERR_INPUT, "%s: folders nested deeper than %d levels", dir,
                      MAX_DEPTH);
  DIR *d = opendir(dir);
  if (!d) return us_err_set(err, US_ERR_IO, "cannot open folder %s: %s", dir, strerror(errno));
  us_status st = US_OK;
  struct dirent *e;
  while (!st && (e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    us_buf path;
    us_buf_init(&path, 0);
    if (us_buf_printf(&path, "%s/%s", dir, e->d_name)) {
      st = us_err_set(err, US_ERR_NOMEM, "out of memory listing %s", dir);
      break;
    }
    struct stat sb;
    if (stat(path.data, &sb) != 0) {
      st = us_err_set(err, US_ERR_IO, "cannot read %s: %s", path.data, strerror(errno));
    } else if (S_ISDIR(sb.st_mode)) {
      st = walk(path.data, depth + 1, out, err);
    } else if (S_ISREG(sb.st_mode) && is_document(e->d_name)) {
      st = list_push(out, us_buf_steal(&path));
      if (st) us_err_set(err, st, "out of memory listing %s", dir);
    }
    us_buf_free(&path);
  }
  closedir(d);
  return st;
}

static int compare_paths(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct doc_ctx {
  us__prompt_sink *sink;
  const char *shown;
  us_buf where;
} doc_ctx;

static us_status on_chunk(void *user, const char *chunk, size_t len, int number, us_err *err) {
  doc_ctx *d = user;
  us_buf_reset(&d->where);
  if (us_buf_printf(&d->where, "%s#chunk%d", d->shown, number))
    return us_err_set(err, US_ERR_NOMEM, "%s: out of memory", d->shown);
  return us__prompt_emit(d->sink, chunk, len, NULL, d->where.data, err);
}

/* Checks (or repairs) the document's UTF-8 line by line, so an error names its line. */
static us_status checked_document(us__prompt_sink *sink, const char *shown, char **text,
                                  size_t *len, us_err *err) {
  if (us_utf8_invalid_at(*text, *len) == *len) return US_OK;
  us_buf fixed, scratch;
  us_buf_init(&fixed, 0);
  us_buf_init(&scratch, 0);
  us_status st = US_OK;
  size_t pos = 0;
  for (long number = 1; !st && pos < *len; number++) {
    char *nl = memchr(*text + pos, '\n', *len - pos);
    size_t n = nl ? (size_t)(nl - (*text + pos)) : *len - pos;
    char *line = *text + pos;
    size_t line_len = n;
    bool repaired;
    st = us__line_checked(sink->data, shown, number, &line, &line_len, &scratch, &repaired, err);
    if (!st && repaired) sink->stats->repaired++;
    if (!st && (us_buf_append(&fixed, line, line_len) || (nl && us_buf_append(&fixed, "\n", 1))))
      st = us_err_set(err, US_ERR_NOMEM, "%s: out of memory", shown);
    pos += n + (nl ? 1 : 0);
  }
  us_buf_free(&scratch);
  if (st) {
    us_buf_free(&fixed);
    return st;
  }
  free(*text);
  *len = fixed.len;
  *text = us_buf_steal(&fixed);
  return US_OK;
}

/* Reads, checks and chunks one document inside one transaction. */
static us_status load_document(us__prompt_sink *sink, const char *path, us_err *err) {
  const char *shown = us__prompt_display_path(sink->base_dir, path);
  char *text = NULL;
  size_t len = 0;
  us_status st = us_read_file(path, MAX_DOC_BYTES, &text, &len, err);
  if (st) return st;
  doc_ctx d = {.sink = sink, .shown = shown};
  us_buf_init(&d.where, 0);
  char *body = text;
  if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) {
    memmove(text, text + 3, len - 3 + 1); /* with the NUL */
    len -= 3;
  }
  st = checked_document(sink, shown, &body, &len, err);
  if (st) goto fail;
  int max = sink->data->chunk_chars > 0 ? sink->data->chunk_chars : 1500;
  size_t n = strlen(path);
  bool markdown = !(n > 4 && strcasecmp(path + n - 4, ".txt") == 0);
  st = us_cache_begin(sink->cache, err);
  if (st) goto fail;
  st = us__chunk_document(body, len, markdown, max, on_chunk, &d, err);
  if (st)
    us_cache_rollback(sink->cache, NULL);
  else
    st = us_cache_commit(sink->cache, err);
fail:
  us_buf_free(&d.where);
  free(body);
  return st;
}

us_status us__load_docs(us__prompt_sink *sink, const char *path, us_err *err) {
  path_list docs = {0};
  struct stat sb;
  if (stat(path, &sb) != 0)
    return us_err_set(err, US_ERR_IO, "cannot open folder %s: %s", sink->source, strerror(errno));
  if (!S_ISDIR(sb.st_mode))
    return us_err_set(err, US_ERR_CONFIG, "data.inputs: %s has format \"docs\" but is not a folder",
                      sink->source);
  us_status st = walk(path, 0, &docs, err);
  if (st) goto fail;
  if (docs.n == 0) {
    st = us_err_set(err, US_ERR_INPUT, "%s: no .md, .markdown or .txt documents in this folder",
                    sink->source);
    goto fail;
  }
  qsort(docs.items, docs.n, sizeof *docs.items, compare_paths);
  for (size_t i = 0; !st && i < docs.n; i++) st = load_document(sink, docs.items[i], err);
fail:
  for (size_t i = 0; i < docs.n; i++) free(docs.items[i]);
  free(docs.items);
  return st;
}
