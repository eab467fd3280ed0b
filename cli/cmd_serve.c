/* understudy serve CONFIG [--host H] [--port P]: the cascade as an OpenAI-compatible endpoint
 * (serve/serve.h). SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the student. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "serve/serve.h"

static const char usage[] =
    "usage: understudy serve CONFIG [--host 127.0.0.1] [--port 8080] [--port-file FILE]\n"
    "                        [--set key=value]... [--quiet] [--verbose]\n"
    "  Serves POST /v1/chat/completions (OpenAI-compatible), GET /v1/models, /health and\n"
    "  /metrics. The student answers the task when its confidence reaches the threshold\n"
    "  (serve.threshold, else the report's recommended cascade); the teacher answers the rest.\n"
    "  --host ADDR       address to bind (default 127.0.0.1; any other needs serve.api_keys_env)\n"
    "  --port N          port (default 8080; 0 picks a free one)\n"
    "  --port-file FILE  write the port bound to FILE once listening\n"
    "  SIGTERM/SIGINT: stop accepting, finish what is in flight, exit 0. SIGHUP: reload\n"
    "  student.bin (also picked up when a newer one appears; see serve.reload_check_s).\n";

static volatile sig_atomic_t reload_flag;

static void on_hup(int sig) {
  (void)sig;
  reload_flag = 1;
}

typedef struct serve_cli {
  const us_cli_common *common;
  const char *port_file;
} serve_cli;

static void on_ready(void *user, const us_serve_ready *r) {
  const serve_cli *sc = user;
  if (sc->port_file) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", sc->port_file);
    FILE *f = fopen(tmp, "w");
    if (f) {
      fprintf(f, "%d\n", r->port);
      fclose(f);
      rename(tmp, sc->port_file);
    }
  }
  if (sc->common->quiet) return;
  char threshold[64];
  if (r->threshold > 1)
    snprintf(threshold, sizeof threshold, "none (every request goes to the teacher)");
  else
    snprintf(threshold, sizeof threshold, "%.4f", r->threshold);
  fprintf(stderr,
          "serve: http://%s:%d/v1 (student %s; threshold %s from %s)\n"
          "serve: point your OpenAI client's base_url here; Ctrl-C stops, SIGHUP reloads\n",
          r->host, r->port, r->model, threshold, r->threshold_from);
}

int us_cmd_serve(int argc, char **argv) {
  if (us_cli_help(argc, argv, usage)) return US_EXIT_OK;
  us_cli_common common;
  int rc = us_cli_parse_common(&argc, argv, &common, usage);
  if (rc) return rc;
  us_serve_options o;
  memset(&o, 0, sizeof o);
  o.port = US_SERVE_DEFAULT_PORT;
  serve_cli sc = {.common = &common};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if ((strcmp(a, "--host") == 0 || strcmp(a, "--port") == 0 || strcmp(a, "--port-file") == 0) &&
        i + 1 < argc) {
      const char *v = argv[++i];
      if (strcmp(a, "--host") == 0) {
        o.host = v;
      } else if (strcmp(a, "--port-file") == 0) {
        sc.port_file = v;
      } else {
        char *end = NULL;
        long port = strtol(v, &end, 10);
        if (!*v || *end || port < 0 || port > 65535) {
          fprintf(stderr, "understudy: error: serve: --port %s: expected 0 to 65535\n", v);
          return US_EXIT_USAGE;
        }
        o.port = (int)port;
      }
    } else {
      fprintf(stderr, "understudy: error: serve: unknown option or missing value '%s'\n%s", a,
              usage);
      return US_EXIT_USAGE;
    }
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_hup;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGHUP, &sa, NULL);
  us_pipeline *p = NULL;
  if ((rc = us_cli_open(&common, &p))) return rc;
  o.stop = &us_cli_stop;
  o.reload = &reload_flag;
  o.user = &sc;
  o.ready = on_ready;
  us_serve_summary s;
  us_err err = {0};
  us_status st = us_serve_run(p, &o, &s, &err);
  us_pipeline_close(p);
  if (st) return us_cli_fail(st, &err, NULL);
  if (!common.quiet)
    fprintf(stderr,
            "serve: stopped: %lld requests (student %lld, teacher %lld, cache %lld, errors %lld); "
            "%lld audits, %lld agreeing; $%.4f paid to the teacher, $%.4f saved%s\n",
            (long long)s.requests, (long long)s.student, (long long)s.teacher, (long long)s.cache,
            (long long)s.errors, (long long)s.audits, (long long)s.audits_agreeing, s.spent_usd,
            s.saved_usd, s.drifted ? "; drift switched the student off" : "");
  return US_EXIT_OK;
}
