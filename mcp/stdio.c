/* stdio.c: the stdio transport: one JSON-RPC message per line on in_fd, replies on out_fd.
 *
 * Both fds live on the gateway's loop. Input is read as it comes and cut into lines; a line
 * longer than cfg.max_message_bytes is skipped to its end and answered with an error, without
 * ever being held whole. Output is queued and written as the fd takes it, so a client that reads
 * slowly never blocks the loop (the queue has a bound; past it the session ends).
 *
 * When the input ends, the calls still running are let finish (so `cellblock mcp < requests`
 * answers everything), bounded by S_DRAIN_MS; SIGINT or SIGTERM ends at once. Then the session
 * and its default sandbox go.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cb/cleanup.h"
#include "mcp_private.h"
#include "kg/gateway.h"

#define S_READ_CHUNK 65536
#define S_OUT_MAX (512u << 20) /* queued output past which the client counts as gone */
#define S_DRAIN_MS 30000

typedef struct {
    mcp_server_t *srv;
    mcp_session_t *session;
    zloop_t *loop;
    int in_fd, out_fd;
    cb_buf_t line; /* the line being read */
    bool skipping; /* inside a line that is too long */
    size_t skipped;
    cb_buf_t out;    /* queued output */
    size_t out_sent; /* bytes of out already written */
    bool out_polled; /* a POLLOUT poller is registered */
    bool input_ended;
    bool broken; /* the output failed: nobody is listening */
    volatile int done;
    int drain_timer;
} s_stdio_t;

static void s_set_nonblocking(int fd)
{
    struct stat st;
    /* Only pipes and sockets: a terminal's flags are shared with whoever else uses it. */
    if (fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int s_on_writable(zloop_t *loop, zmq_pollitem_t *item, void *arg);

static void s_maybe_done(s_stdio_t *io)
{
    if (io->input_ended && zlistx_size(io->session->calls) == 0)
        io->done = 1;
}

static void s_flush(s_stdio_t *io)
{
    while (io->out_sent < io->out.len && !io->broken) {
        ssize_t n = write(io->out_fd, io->out.data + io->out_sent, io->out.len - io->out_sent);
        if (n > 0) {
            io->out_sent += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            if (!io->out_polled) {
                zmq_pollitem_t item = {.fd = io->out_fd, .events = ZMQ_POLLOUT};
                io->out_polled = zloop_poller(io->loop, &item, s_on_writable, io) == 0;
            }
            return;
        } else {
            cb_warn("mcp stdio: writing to stdout failed (%s); the client is gone",
                    strerror(errno));
            io->broken = true;
            io->done = 1;
        }
    }
    if (io->out_sent == io->out.len) {
        cb_buf_clear(&io->out);
        io->out_sent = 0;
        if (io->out_polled) {
            zmq_pollitem_t item = {.fd = io->out_fd};
            zloop_poller_end(io->loop, &item);
            io->out_polled = false;
        }
    }
}

static int s_on_writable(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    s_stdio_t *io = arg;
    s_flush(io);
    return io->done ? -1 : 0;
}

static int s_send(json_t *msg, void *arg)
{
    s_stdio_t *io = arg;
    if (io->broken)
        return -1;
    cleanup_free char *text = json_dumps(msg, JSON_COMPACT);
    if (!text || io->out.len + strlen(text) + 1 > S_OUT_MAX) {
        cb_err("mcp stdio: %s; ending the session",
               text ? "the client does not read its output" : "out of memory");
        io->broken = true;
        io->done = 1;
        return -1;
    }
    cb_buf_append(&io->out, text, strlen(text));
    cb_buf_append(&io->out, "\n", 1);
    s_flush(io);
    s_maybe_done(io); /* a reply may have been the last one the drain waits for */
    return 0;
}

static int s_on_drain_timeout(zloop_t *loop, int timer_id, void *arg)
{
    s_stdio_t *io = arg;
    io->drain_timer = -1;
    cb_warn("mcp stdio: input ended %d s ago and %zu call(s) still run; stopping",
            S_DRAIN_MS / 1000, zlistx_size(io->session->calls));
    io->done = 1;
    return -1;
}

static void s_line(s_stdio_t *io, const char *text, size_t len)
{
    while (len > 0 && (text[len - 1] == '\r' || text[len - 1] == ' ' || text[len - 1] == '\t'))
        len--;
    size_t lead = 0;
    while (lead < len && (text[lead] == ' ' || text[lead] == '\t'))
        lead++;
    if (len > lead)
        mcp_session_handle(io->session, text + lead, len - lead);
}

static void s_too_long(s_stdio_t *io)
{
    char msg[160];
    snprintf(msg, sizeof msg,
             "message too large: %zu bytes or more, the limit is %zu "
             "(CELLBLOCK_MAX_MESSAGE_MB)",
             io->skipped, io->srv->cfg.max_message_bytes);
    mcp_session_reject(io->session, CB_ERR_BAD_REQUEST, msg);
}

static int s_on_readable(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    s_stdio_t *io = arg;
    char chunk[S_READ_CHUNK];
    ssize_t n = read(io->in_fd, chunk, sizeof chunk);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        if (n < 0)
            cb_warn("mcp stdio: reading stdin failed: %s", strerror(errno));
        if (io->line.len && !io->skipping)
            s_line(io, io->line.data, io->line.len); /* a last line without its newline */
        zmq_pollitem_t in = {.fd = io->in_fd};
        zloop_poller_end(loop, &in);
        io->input_ended = true;
        io->drain_timer = kg_timer_start(io->srv->gw, S_DRAIN_MS, 1, s_on_drain_timeout, io);
        s_maybe_done(io);
        return io->done ? -1 : 0;
    }
    size_t max = io->srv->cfg.max_message_bytes;
    const char *p = chunk, *end = chunk + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t part = (size_t)((nl ? nl : end) - p);
        if (io->skipping) {
            io->skipped += part;
        } else if (io->line.len + part > max) {
            io->skipping = true;
            io->skipped = io->line.len + part;
            cb_buf_clear(&io->line);
        } else if (nl && io->line.len == 0) {
            s_line(io, p, part); /* the whole line is in this chunk: no copy */
        } else {
            cb_buf_append(&io->line, p, part);
            if (nl) {
                s_line(io, io->line.data, io->line.len);
                cb_buf_clear(&io->line);
            }
        }
        if (nl && io->skipping) {
            s_too_long(io);
            io->skipping = false;
            io->skipped = 0;
        }
        p = nl ? nl + 1 : end;
    }
    return io->done ? -1 : 0;
}

int mcp_stdio_serve(mcp_server_t *srv, int in_fd, int out_fd, cb_error_t *err)
{
    s_stdio_t io = {.srv = srv,
                    .loop = kg_gateway_loop(srv->gw),
                    .in_fd = in_fd,
                    .out_fd = out_fd,
                    .drain_timer = -1};
    io.session = mcp_session_new(srv, s_send, &io);
    s_set_nonblocking(in_fd);
    s_set_nonblocking(out_fd);
    zmq_pollitem_t in = {.fd = in_fd, .events = ZMQ_POLLIN};
    if (zloop_poller(io.loop, &in, s_on_readable, &io) != 0) {
        mcp_session_destroy(&io.session);
        return cb_error_make(err, errno, "watch stdin");
    }
    /* Tolerate EOF-ish poll errors (a closed pipe reports POLLHUP/POLLERR). */
    zloop_poller_set_tolerant(io.loop, &in);
    kg_gateway_run_until(srv->gw, &io.done, -1);
    kg_timer_stop(srv->gw, &io.drain_timer);
    if (!io.input_ended)
        zloop_poller_end(io.loop, &in);
    mcp_session_destroy(&io.session);
    if (io.out_polled) {
        zmq_pollitem_t out = {.fd = out_fd};
        zloop_poller_end(io.loop, &out);
    }
    /* Whatever is still queued (the last replies) goes out with the fd back in blocking mode. */
    fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) & ~O_NONBLOCK);
    if (!io.broken)
        s_flush(&io);
    cb_buf_free(&io.line);
    cb_buf_free(&io.out);
    return 0;
}
