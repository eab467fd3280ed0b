/* The server's listening socket (serve_int.h): --host resolved and bound, and the connections
 * accepted by the main thread and handed to libmicrohttpd's pool of workers. When each worker
 * accepted from a shared socket, the first one awake took most of a burst: a client opening 16
 * connections at once had 10 to 15 of them on one of four threads, and under load one worker did
 * all the work while another idled. MHD_add_connection gives each connection to a worker by its
 * descriptor number, so consecutive connections go to different workers. */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "serve/serve_int.h"

#define LISTEN_BACKLOG 1024 /* connections the kernel holds for the accept loop */

static bool is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family == AF_INET6)
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
  return false;
}

us_status us__listen_resolve(const char *host, int port, struct sockaddr_storage *out,
                             bool *loopback, us_err *err) {
  struct addrinfo hints, *ai = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  char service[16];
  snprintf(service, sizeof service, "%d", port);
  int rc = getaddrinfo(host, service, &hints, &ai);
  if (rc != 0 || !ai) return us_err_set(err, US_ERR_USAGE, "--host %s: %s", host, gai_strerror(rc));
  memset(out, 0, sizeof *out);
  memcpy(out, ai->ai_addr, ai->ai_addrlen);
  *loopback = is_loopback(ai->ai_addr);
  freeaddrinfo(ai);
  return US_OK;
}

int us__listen_open(const struct sockaddr_storage *addr) {
  int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int on = 1;
  socklen_t len =
      addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      bind(fd, (const struct sockaddr *)addr, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int us__listen_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return -1;
}

void us__listen_accept(us__server *s, struct MHD_Daemon *d, int lfd, int timeout_ms) {
  struct pollfd pfd = {.fd = lfd, .events = POLLIN};
  if (poll(&pfd, 1, timeout_ms) <= 0) return;
  for (;;) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      (void)MHD_add_connection(d, fd, (struct sockaddr *)&ss, len); /* closes fd on failure */
      continue;
    }
    int e = errno;
    if (e == EINTR || e == ECONNABORTED) continue;
    if (e == EAGAIN || e == EWOULDBLOCK) return; /* none left */
    if (!s->accept_warned)
      us_log(US_LOG_WARN, "serve: cannot accept a connection, it waits: %s%s", strerror(e),
             e == EMFILE || e == ENFILE ? " (raise the limit on open files: ulimit -n)" : "");
    s->accept_warned = true;
    poll(NULL, 0, 20); /* the listening socket stays readable: pause rather than spin */
    return;
  }
}
