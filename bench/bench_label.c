/* Labelling throughput: starts the mock teacher on loopback with a fixed latency, fills a fresh
 * workspace with N prompts, labels them at a given concurrency and prints JSON: requests/s
 * against the concurrency/latency bound, and the client's CPU time per request (getrusage,
 * this process only: HTTP, JSON, hashing and the SQLite commits). See bench/README.md. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "distill/prompts.h"
#include "distill/teacher.h"
#include "pipeline/config.h"

typedef struct bench_args {
  const char *mock;
  const char *workdir;
  int prompts, concurrency, latency_ms;
  double fault_rate;
  bool keep;
} bench_args;

static void usage(FILE *f) {
  fprintf(f,
          "usage: bench_label [--mock PATH] [--prompts N] [--concurrency C] [--latency-ms MS]\n"
          "                   [--fault-rate P] [--workdir DIR] [--keep]\n"
          "  --mock PATH        us_mock_teacher binary (default: ../tests/us_mock_teacher next\n"
          "                     to this program)\n"
          "  --prompts N        prompts to label (default 3000)\n"
          "  --concurrency C    teacher.concurrency (default 64)\n"
          "  --latency-ms MS    the mock's fixed latency (default 200)\n"
          "  --fault-rate P     share of transient faults the mock injects (default 0)\n"
          "  --workdir DIR      where the workspace goes (default a fresh /tmp folder)\n"
          "  --keep             keep the workspace afterwards\n");
}

static int parse_args(int argc, char **argv, bench_args *a, char *mock_buf, size_t n) {
  a->prompts = 3000, a->concurrency = 64, a->latency_ms = 200;
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(f, "--keep") == 0) {
      a->keep = true;
      continue;
    }
    if (strcmp(f, "--help") == 0) {
      usage(stdout);
      exit(0);
    }
    if (!v) {
      usage(stderr);
      return 2;
    }
    i++;
    if (strcmp(f, "--mock") == 0)
      a->mock = v;
    else if (strcmp(f, "--workdir") == 0)
      a->workdir = v;
    else if (strcmp(f, "--prompts") == 0)
      a->prompts = atoi(v);
    else if (strcmp(f, "--concurrency") == 0)
      a->concurrency = atoi(v);
    else if (strcmp(f, "--latency-ms") == 0)
      a->latency_ms = atoi(v);
    else if (strcmp(f, "--fault-rate") == 0)
      a->fault_rate = atof(v);
    else {
      usage(stderr);
      return 2;
    }
  }
  if (a->prompts < 1 || a->concurrency < 1 || a->latency_ms < 0) {
    usage(stderr);
    return 2;
  }
  if (!a->mock) {
    const char *slash = strrchr(argv[0], '/');
    int dir = slash ? (int)(slash - argv[0]) : 1;
    snprintf(mock_buf, n, "%.*s/../tests/us_mock_teacher", dir, slash ? argv[0] : ".");
    a->mock = mock_buf;
  }
  return 0;
}

/* Starts the mock and returns its pid; *port from its port file. */
static pid_t start_mock(const bench_args *a, const char *dir, int *port) {
  char port_file[4096], latency[32], faults[32];
  snprintf(port_file, sizeof port_file, "%s/mock.port", dir);
  snprintf(latency, sizeof latency, "%d", a->latency_ms);
  snprintf(faults, sizeof faults, "%g", a->fault_rate);
  unlink(port_file);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    execl(a->mock, a->mock, "--port", "0", "--port-file", port_file, "--latency-ms", latency,
          "--labels", "a,b,c", "--fault-rate", faults, "--die-with-parent", "--quiet",
          (char *)NULL);
    fprintf(stderr, "bench_label: cannot run %s: %s\n", a->mock, strerror(errno));
    _exit(127);
  }
  for (int i = 0; i < 500; i++) { /* up to 5 s */
    FILE *f = fopen(port_file, "r");
    if (f) {
      int ok = fscanf(f, "%d", port);
      fclose(f);
      if (ok == 1 && *port > 0) return pid;
    }
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return -1;
    us_sleep(0.01);
  }
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  return -1;
}

static int write_inputs(const bench_args *a, const char *dir, int port, char *config_path,
                        size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/prompts.jsonl", dir);
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  for (int i = 0; i < a->prompts; i++)
    fprintf(f,
            "{\"text\": \"customer message number %d: my card payment %d was declined "
            "twice at the shop, please help\"}\n",
            i, i * 7919 % 10007);
  if (fclose(f)) return -1;
  snprintf(config_path, n, "%s/bench.json", dir);
  f = fopen(config_path, "w");
  if (!f) return -1;
  fprintf(f,
          "{\"name\": \"bench_label\", \"output\": \"out\",\n"
          " \"task\": {\"type\": \"classify\", \"labels\": [\"a\", \"b\", \"c\"]},\n"
          " \"data\": {\"inputs\": [\"prompts.jsonl\"]},\n"
          " \"teacher\": {\"base_url\": \"http://127.0.0.1:%d/v1\", \"model\": \"mock-1\",\n"
          "   \"concurrency\": %d, \"timeout_s\": 30, \"max_retries\": 8, \"budget_usd\": 1000,\n"
          "   \"price\": {\"input_per_mtok\": 0.15, \"output_per_mtok\": 0.6}}}\n",
          port, a->concurrency);
  return fclose(f) ? -1 : 0;
}

/* Process CPU seconds (user + system when sys is NULL, else user, with system in *sys). */
static double rusage_cpu_split(double *sys) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double user = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6;
  double system = (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
  if (sys) *sys = system;
  return sys ? user : user + system;
}

static double rusage_cpu(void) {
  return rusage_cpu_split(NULL);
}

int main(int argc, char **argv) {
  bench_args a = {0};
  char mock_buf[4096], dir_buf[] = "/tmp/us_bench_label.XXXXXX", config_path[4096], db[4200];
  int rc = parse_args(argc, argv, &a, mock_buf, sizeof mock_buf);
  if (rc) return rc;
  const char *dir = a.workdir;
  if (!dir && !(dir = mkdtemp(dir_buf))) {
    perror("bench_label: mkdtemp");
    return 1;
  }
  us_err err = {0};
  if (us_mkdirs(dir, &err)) {
    fprintf(stderr, "bench_label: %s\n", err.msg);
    return 1;
  }
  int port = 0;
  pid_t mock = start_mock(&a, dir, &port);
  if (mock < 0) {
    fprintf(stderr,
            "bench_label: the mock teacher (%s) did not start; build it with "
            "`cmake --build BUILD --target us_mock_teacher`\n",
            a.mock);
    return 1;
  }
  us_config c;
  us_cache *cache = NULL;
  us_prompts_stats ps;
  us_label_stats ls;
  us_status st = write_inputs(&a, dir, port, config_path, sizeof config_path)
                     ? us_err_set(&err, US_ERR_IO, "cannot write the inputs in %s", dir)
                     : us_config_load(config_path, NULL, 0, &c, &err);
  bool config_loaded = st == US_OK;
  if (!st) st = us_mkdirs(c.output, &err);
  if (!st) {
    snprintf(db, sizeof db, "%s/understudy.db", c.output);
    st = us_cache_open(db, &cache, &err);
  }
  if (!st) st = us_prompts_build(&c.task, &c.data, c.dir, cache, &ps, &err);
  double sys0, user0 = rusage_cpu_split(&sys0);
  double wall0 = us_now(), cpu0 = rusage_cpu();
  if (!st) st = us_teacher_label(&c.task, &c.data, &c.teacher, cache, NULL, &ls, &err);
  double wall = us_now() - wall0, cpu = rusage_cpu() - cpu0;
  double sys1, user1 = rusage_cpu_split(&sys1);
  /* a rerun sends nothing: what remains is building and looking up every request */
  us_label_stats rs;
  double rerun_wall0 = us_now(), rerun_cpu0 = rusage_cpu();
  if (!st) st = us_teacher_label(&c.task, &c.data, &c.teacher, cache, NULL, &rs, &err);
  double rerun_wall = us_now() - rerun_wall0, rerun_cpu = rusage_cpu() - rerun_cpu0;
  kill(mock, SIGTERM);
  waitpid(mock, NULL, 0);
  if (st) {
    fprintf(stderr, "bench_label: %s\n", err.msg);
  } else {
    double rps = (double)ls.done / wall;
    double bound = a.latency_ms > 0 ? a.concurrency * 1000.0 / a.latency_ms : 0;
    printf(
        "{\"bench\": \"label\", \"prompts\": %d, \"concurrency\": %d, \"latency_ms\": %d, "
        "\"fault_rate\": %g,\n \"answered\": %lld, \"failed\": %lld, \"requests\": %lld, "
        "\"retries\": %lld, \"wall_s\": %.3f,\n \"requests_per_s\": %.1f, \"bound\": %.1f, "
        "\"ratio\": %.3f, \"cpu_s\": %.3f, \"cpu_us_per_request\": %.1f,\n "
        "\"user_us_per_request\": %.1f, \"system_us_per_request\": %.1f, "
        " \"rerun_requests\": %lld, "
        "\"rerun_wall_s\": %.3f, \"rerun_cpu_us_per_prompt\": %.1f}\n",
        a.prompts, a.concurrency, a.latency_ms, a.fault_rate, (long long)ls.done,
        (long long)ls.failed, (long long)ls.requests, (long long)ls.retries, wall, rps, bound,
        bound > 0 ? rps / bound : 0, cpu, ls.requests ? cpu * 1e6 / (double)ls.requests : 0,
        ls.requests ? (user1 - user0) * 1e6 / (double)ls.requests : 0,
        ls.requests ? (sys1 - sys0) * 1e6 / (double)ls.requests : 0, (long long)rs.requests,
        rerun_wall, rerun_cpu * 1e6 / (double)a.prompts);
  }
  us_cache_close(cache);
  if (config_loaded) us_config_free(&c);
  if (!a.keep && !a.workdir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_label: could not remove %s\n", dir);
  }
  return st ? 1 : 0;
}
