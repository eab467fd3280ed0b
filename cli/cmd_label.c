/* `understudy label CONFIG [--dry-run]`: has the teacher label every prompt, showing progress,
 * and prints a summary; or, with --dry-run, what a run would send and cost. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "distill/teacher.h"

static const char *usage =
    "usage: understudy label CONFIG [--dry-run] [--set key.path=value]... [--quiet] [--verbose]\n"
    "\n"
    "Sends every prompt of the workspace that has no cached answer to the teacher\n"
    "(teacher.base_url, teacher.model), teacher.concurrency requests at a time, within\n"
    "teacher.requests_per_minute, teacher.tokens_per_minute and teacher.budget_usd.\n"
    "Every answer is saved as it arrives; rerun after a stop to resume.\n"
    "With teacher.mode \"batch\" the requests go through the Batch API instead: the\n"
    "batches' progress is shown while they run, and a rerun resumes the open batches.\n"
    "\n"
    "options:\n"
    "  --dry-run             contact nobody: print prompt and cached counts, estimated tokens\n"
    "                        and a cost range\n"
    "  --set key.path=value  override a config key (repeatable)\n"
    "  --quiet               no progress line\n"
    "  --verbose             also log each failed prompt\n"
    "  --help                this text\n"
    "\n"
    "The API key is read from the environment variable named by teacher.api_key_env\n"
    "(default OPENAI_API_KEY); it is not needed for a loopback base_url.\n"
    "Exit status: 0 every prompt labelled; 1 error; 2 usage; 3 budget reached; 4 prompts\n"
    "left unlabelled after their retries (the most common cause on stderr); 130 interrupted\n"
    "(Ctrl-C).\n";

static void format_eta(char *buf, size_t n, double s) {
  if (!(s >= 0) || s > 1e7)
    snprintf(buf, n, "--");
  else if (s >= 3600)
    snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
  else if (s >= 60)
    snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
  else
    snprintf(buf, n, "%ds", (int)(s + 0.5));
}

void us_cli_label_progress(void *user, const us_label_stats *s) {
  us_cli_session *p = user;
  if (p->common->quiet) return;
  double now = us_now();
  if (!p->tty && now - p->last_line < 5.0) return;
  int64_t answered = s->done + s->failed;
  int64_t finished = s->cached + answered;
  if (s->batches_open > 0) { /* teacher.mode "batch": the batches' own progress */
    fprintf(stderr,
            "%slabel: %lld/%lld  batch %s: %lld open, %lld requests, %lld done, %lld failed  "
            "$%.4f%s",
            p->tty ? "\r" : "", (long long)finished, (long long)s->total, s->batch_status,
            (long long)s->batches_open, (long long)s->batch_requests, (long long)s->batch_completed,
            (long long)s->batch_failed, s->spent_usd, p->tty ? "\033[K" : "\n");
    fflush(stderr);
    p->drawn = p->tty;
    p->last_line = now;
    return;
  }
  double rate = s->elapsed_s > 0 ? (double)answered / s->elapsed_s : 0;
  char eta[32];
  format_eta(eta, sizeof eta, rate > 0 ? (double)s->left / rate : -1);
  fprintf(stderr,
          "%slabel: %lld/%lld  cached %lld  failed %lld  retries %lld  $%.4f  %.1f req/s  "
          "ETA %s%s",
          p->tty ? "\r" : "", (long long)finished, (long long)s->total, (long long)s->cached,
          (long long)s->failed, (long long)s->retries, s->spent_usd, rate, eta,
          p->tty ? "\033[K" : "\n");
  fflush(stderr);
  p->drawn = p->tty;
  p->last_line = now;
}

/* Prints the base URL without any user:password@ part. */
static void print_url(const char *url) {
  CURLU *u = curl_url();
  char *safe = NULL;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_URL, &safe, 0) == CURLUE_OK)
    fputs(safe, stdout);
  else
    fputs("(teacher.base_url, not a valid URL)", stdout);
  curl_free(safe);
  curl_url_cleanup(u);
}

static void print_dry_run(const us_config *c, const us_label_stats *s) {
  int64_t to_send = s->total - s->cached;
  printf("dry run: nothing was sent\n");
  printf("teacher:          %s at ", c->teacher.model);
  print_url(c->teacher.base_url);
  putchar('\n');
  printf("prompts:          %lld (%lld cached, %lld to send)\n", (long long)s->total,
         (long long)s->cached, (long long)to_send);
  printf("prompt tokens:    ~%lld (about 4 characters a token)\n", (long long)s->est_prompt_tokens);
  printf("completion tokens: at most %lld (teacher.max_tokens %d each)\n",
         (long long)s->est_completion_tokens_max, c->teacher.max_tokens);
  printf("estimated cost:   $%.4f to $%.4f (worst case), budget $%.2f\n", s->est_cost_low_usd,
         s->est_cost_high_usd, c->teacher.budget_usd);
  if (s->est_prefix_tokens > 0 && s->est_cached_tokens > 0 && s->est_cache_saving_usd <= 0)
    printf(
        "prompt caching:   shared prefix ~%lld tokens a request; ~%lld tokens may come from "
        "the provider's cache, but teacher.price.cached_input_per_mtok is the input price: "
        "set it to count the saving\n",
        (long long)s->est_prefix_tokens, (long long)s->est_cached_tokens);
  else if (s->est_prefix_tokens > 0 && s->est_cached_tokens > 0)
    printf(
        "prompt caching:   shared prefix ~%lld tokens a request; ~%lld tokens from the "
        "provider's cache save ~$%.4f at teacher.price.cached_input_per_mtok\n",
        (long long)s->est_prefix_tokens, (long long)s->est_cached_tokens, s->est_cache_saving_usd);
  else if (s->est_prefix_tokens > 0)
    printf(
        "prompt caching:   shared prefix ~%lld tokens a request, under the 1024 tokens "
        "providers cache: no saving expected\n",
        (long long)s->est_prefix_tokens);
  if (s->est_cost_high_usd > c->teacher.budget_usd)
    printf(
        "note: the worst case passes teacher.budget_usd; a run stops at the budget and the "
        "next one resumes\n");
}

static void print_summary(const us_label_stats *s) {
  printf("prompts: %lld in all, %lld cached, %lld answered now, %lld failed, %lld left",
         (long long)s->total, (long long)s->cached, (long long)s->done, (long long)s->failed,
         (long long)s->left);
  if (s->unparsed > 0)
    printf(" (%lld answers match no label: kept as unparsed)", (long long)s->unparsed);
  putchar('\n');
  if (s->capped > 0)
    printf(
        "note: %lld answers were longer than %lld KiB (the teacher ignored teacher.max_tokens) "
        "and were stored cut to that length\n",
        (long long)s->capped, (long long)(s->answer_cap / 1024));
  if (s->chunks > 0)
    printf("documents: %lld chunks asked for questions; %lld new questions stored as prompts\n",
           (long long)s->chunks, (long long)s->questions_added);
  double rate = s->elapsed_s > 0 ? (double)(s->done + s->failed) / s->elapsed_s : 0;
  printf(
      "teacher: %lld requests (%lld retries) in %.1f s, %.1f answers/s, %.0f us CPU per "
      "request\n",
      (long long)s->requests, (long long)s->retries, s->elapsed_s, rate,
      s->requests > 0 ? s->cpu_s * 1e6 / (double)s->requests : 0);
  printf("spent: $%.4f this run, $%.4f in this workspace\n", s->spent_usd, s->spent_total_usd);
  if (s->cached_tokens > 0 || s->reasoning_tokens > 0)
    printf("tokens: %lld prompt tokens from the provider's cache, %lld reasoning tokens\n",
           (long long)s->cached_tokens, (long long)s->reasoning_tokens);
  if (s->unanswered > 0)
    printf(
        "%lld requests may have been billed without an answer: up to $%.4f (counted against "
        "teacher.budget_usd)\n",
        (long long)s->unanswered, s->unanswered_usd);
  if (s->unanswered_total > s->unanswered)
    printf(
        "in this workspace, %lld requests may have been billed without an answer: up to "
        "$%.4f\n",
        (long long)s->unanswered_total, s->unanswered_total_usd);
  if (s->batches_created > 0 || s->batch_saved_usd > 0)
    printf("batches: %lld created in this run; their discount saved $%.4f against live prices\n",
           (long long)s->batches_created, s->batch_saved_usd);
}

void us_cli_label_begin(us_cli_session *s) {
  s->tty = us_cli_tty();
  s->last_line = us_now();
  s->drawn = false;
}

int us_cli_label_end(us_cli_session *ss, us_status st, const us_err *err,
                     const us_label_stats *stats) {
  if (ss->drawn) fputc('\n', stderr);
  ss->drawn = false;
  const us_config *config = us_pipeline_config(ss->pipeline);
  if (ss->dry_run && st == US_OK) {
    print_dry_run(config, stats);
  } else if (st == US_OK || st == US_ERR_BUDGET || st == US_ERR_INTERRUPTED || st == US_ERR_AUTH ||
             st == US_ERR_NOT_FOUND || st == US_ERR_UNLABELLED) {
    if (stats->total > 0 || st == US_OK) print_summary(stats);
  }
  if (st == US_OK && stats->total == 0 && stats->chunks == 0)
    printf("no prompts in the workspace: run `understudy prompts %s` first\n",
           ss->common->config_path);
  return ss->rc = st ? us_cli_fail(st, err, us_pipeline_hint(US_STAGE_LABEL, st)) : US_EXIT_OK;
}

int us_cmd_label(int argc, char **argv) {
  if (us_cli_help(argc, argv, usage)) return US_EXIT_OK;
  us_cli_common common;
  int rc = us_cli_parse_common(&argc, argv, &common, usage);
  if (rc) return rc;
  us_cli_session ss = {.common = &common};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--dry-run") == 0) {
      ss.dry_run = true;
    } else {
      fprintf(stderr, "understudy: error: label: unknown option '%s'\n%s", argv[i], usage);
      return US_EXIT_USAGE;
    }
  }
  if ((rc = us_cli_open(&common, &ss.pipeline))) return rc;
  us_pipeline_options opt;
  us_cli_options(&ss, &opt);
  us_label_stats stats;
  us_err err = {0};
  us_cli_label_begin(&ss);
  us_status st = us_pipeline_label(ss.pipeline, &opt, &stats, &err);
  rc = us_cli_label_end(&ss, st, &err, &stats);
  us_pipeline_close(ss.pipeline);
  return rc;
}
