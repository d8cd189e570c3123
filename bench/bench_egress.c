/* bench_egress: what the egress proxy costs a sandbox's connections, against going direct, in
 * the same run on loopback (goal: bulk throughput through the proxy >= 80% of direct).
 *
 * How: a server thread on 127.0.0.1 answers each connection by its first byte: 'B' sends
 * --mb MiB and closes (a download), 'E' echoes one byte (a connection's setup). The proxy
 * (egress/egress.h only) serves one sandbox whose policy allows exactly that server. Rounds are
 * interleaved, direct then proxied, so load that drifts hits both alike. Prints one JSON object:
 * bulk_direct_mib_s, bulk_proxy_mib_s ({p50, ...} of the rounds' MiB/s), bulk_ratio (proxy p50 /
 * direct p50), setup_direct_ms, setup_proxy_ms (connect to the first echoed byte; through the
 * proxy that includes CONNECT and its 200) and setup_added_ms (p50 difference).
 *
 *   bench_egress [--rounds N] [--mb N] [--connects N] [--json PATH] */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cb/util.h"
#include "egress/egress.h"
#include "stats.h"

static size_t s_bulk_bytes;

static int s_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0)
        return -1;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static void *s_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    if (read(fd, &c, 1) == 1) {
        if (c == 'B') {
            static char chunk[256 * 1024];
            size_t left = s_bulk_bytes;
            while (left) {
                size_t n = left < sizeof chunk ? left : sizeof chunk;
                ssize_t w = send(fd, chunk, n, MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                left -= (size_t)w;
            }
        } else if (send(fd, &c, 1, MSG_NOSIGNAL) < 0) {
        }
    }
    close(fd);
    return NULL;
}

static void *s_server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        pthread_t t;
        if (pthread_create(&t, NULL, s_conn, (void *)(intptr_t)fd) != 0)
            close(fd);
        else
            pthread_detach(t);
    }
}

static int s_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A connection to the server, direct (proxy 0) or through the proxy's CONNECT. */
static int s_open(uint16_t proxy, uint16_t server)
{
    if (!proxy)
        return s_connect(server);
    int fd = s_connect(proxy);
    char req[128], head[256];
    int n = snprintf(req, sizeof req, "CONNECT 127.0.0.1:%u HTTP/1.1\r\n\r\n", server);
    if (fd < 0 || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        return -1;
    size_t len = 0;
    while (len < sizeof head - 1) { /* the 200's head, to its blank line */
        if (read(fd, head + len, 1) != 1) {
            close(fd);
            return -1;
        }
        len++;
        if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[len] = '\0';
    if (strncmp(head, "HTTP/1.1 200", 12) != 0) {
        fprintf(stderr, "bench_egress: the proxy answered: %s\n", head);
        close(fd);
        return -1;
    }
    return fd;
}

/* One download of s_bulk_bytes; MiB/s, or -1. */
static double s_bulk(uint16_t proxy, uint16_t server)
{
    int64_t t0 = cb_now_us();
    int fd = s_open(proxy, server);
    if (fd < 0 || send(fd, "B", 1, MSG_NOSIGNAL) != 1)
        return -1;
    static char buf[256 * 1024];
    size_t got = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        got += (size_t)n;
    close(fd);
    double s = (double)(cb_now_us() - t0) / 1e6;
    return got == s_bulk_bytes ? (double)got / (1024.0 * 1024.0) / s : -1;
}

/* Connect to the first echoed byte; ms, or -1. */
static double s_setup(uint16_t proxy, uint16_t server)
{
    int64_t t0 = cb_now_us();
    int fd = s_open(proxy, server);
    char c = 'E';
    if (fd < 0 || send(fd, &c, 1, MSG_NOSIGNAL) != 1 || read(fd, &c, 1) != 1) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    double ms = (double)(cb_now_us() - t0) / 1000.0;
    close(fd);
    return ms;
}

int main(int argc, char **argv)
{
    int rounds = 10, mb = 256, connects = 200;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc)
            mb = atoi(argv[++i]);
        else if (strcmp(argv[i], "--connects") == 0 && i + 1 < argc)
            connects = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
            json_path = argv[++i];
        else {
            fprintf(stderr,
                    "usage: bench_egress [--rounds N] [--mb N] [--connects N] [--json PATH]\n");
            return 2;
        }
    }
    if (rounds < 1 || mb < 1 || connects < 1) {
        fprintf(stderr, "bench_egress: --rounds, --mb and --connects must be positive\n");
        return 2;
    }
    s_bulk_bytes = (size_t)mb * 1024 * 1024;
    uint16_t server, proxy;
    int sfd = s_listen(&server);
    int pfd = s_listen(&proxy);
    if (sfd < 0 || pfd < 0) {
        fprintf(stderr, "bench_egress: cannot listen on 127.0.0.1\n");
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, s_server, (void *)(intptr_t)sfd);
    pthread_detach(t);

    cb_error_t err = {0};
    egress_config_t cfg = {.max_connections = 1024};
    egress_t *eg = egress_new(&cfg, &err);
    char spec[64];
    snprintf(spec, sizeof spec, "allow=127.0.0.1:%u", server);
    egress_policy_t *pol = egress_policy_from_string(spec, &err);
    egress_sandbox_t *sb = eg && pol ? egress_sandbox_add(eg, "bench", pfd, pol, &err) : NULL;
    egress_policy_destroy(&pol);
    if (!sb) {
        fprintf(stderr, "bench_egress: %s\n", err.msg);
        return 1;
    }

    double *bd = calloc((size_t)rounds, sizeof *bd), *bp = calloc((size_t)rounds, sizeof *bp);
    double *sd = calloc((size_t)connects, sizeof *sd), *sp = calloc((size_t)connects, sizeof *sp);
    s_bulk(0, server); /* warm-up, both ways */
    s_bulk(proxy, server);
    for (int i = 0; i < rounds; i++) {
        bd[i] = s_bulk(0, server);
        bp[i] = s_bulk(proxy, server);
        if (bd[i] < 0 || bp[i] < 0) {
            fprintf(stderr, "bench_egress: a download failed\n");
            return 1;
        }
    }
    for (int i = 0; i < connects; i++) {
        sd[i] = s_setup(0, server);
        sp[i] = s_setup(proxy, server);
        if (sd[i] < 0 || sp[i] < 0) {
            fprintf(stderr, "bench_egress: a connection failed\n");
            return 1;
        }
    }
    bench_stats_t bds = bench_stats(bd, (size_t)rounds), bps = bench_stats(bp, (size_t)rounds);
    bench_stats_t sds = bench_stats(sd, (size_t)connects), sps = bench_stats(sp, (size_t)connects);
    egress_stats_t st;
    egress_sandbox_stats(sb, &st);
    json_t *out = json_pack(
        "{s:s, s:i, s:i, s:o, s:o, s:f, s:f, s:o, s:o, s:f, s:I, s:s}", "name", "egress",
        "bulk_mib", mb, "rounds", rounds, "bulk_direct_mib_s", bench_stats_json(&bds),
        "bulk_proxy_mib_s", bench_stats_json(&bps), "bulk_ratio",
        bench_round4(bds.p50 > 0 ? bps.p50 / bds.p50 : 0), "bulk_goal_ratio", 0.8,
        "setup_direct_ms", bench_stats_json(&sds), "setup_proxy_ms", bench_stats_json(&sps),
        "setup_added_ms", bench_round4(sps.p50 - sds.p50), "proxy_connections",
        (json_int_t)st.connections, "note",
        "loopback; direct and proxied rounds interleaved; a download is --mb MiB server to client");
    int rc = bench_json_write(out, json_path, "bench_egress");
    json_decref(out);
    egress_sandbox_remove(eg, &sb);
    egress_destroy(&eg);
    free(bd);
    free(bp);
    free(sd);
    free(sp);
    return rc < 0 ? 1 : 0;
}
