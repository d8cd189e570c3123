/* test_tenants.c: tenants' credentials on their own (tokens.c, checks.c, login.c): tokens
 * files good and bad (malformed lines, duplicates, modes, owners, symlinks, FIFOs,
 * directories), the token check's principals, login cookies (made, tampered, expired,
 * another server's) and what a forward acts for. TAP output. test_http.c drives the same
 * through a running server with real clients. */
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/tap.h"
#include "http_private.h"

#define ADMIN_TOKEN "admin-token-0123456789abcdef"
#define ALICE_TOKEN "alice-token-0123456789"
#define BOB_TOKEN "bob-token-0123456789abc"
#define SB "4f1c2d3e-0000-4000-8000-123456789abc"

static char s_dir[] = "/tmp/cb-test-tenants-XXXXXX";

/* A file under the test directory with text and mode; its path. Caller owns return value. */
static char *s_write(const char *name, const char *text, mode_t mode)
{
    char *path = cb_strdup_printf("%s/%s", s_dir, name);
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
            perror("write");
        fchmod(fd, mode);
        close(fd);
    }
    return path;
}

/* Load a file and return whether it failed with a message containing want (NULL: must pass). */
static bool s_load_fails(const char *path, const char *want, size_t *count, char *msg, size_t mlen)
{
    http_tenant_token_t *t = NULL;
    size_t n = 0;
    cb_error_t err = {0};
    int rc = http_tokens_load(path, &t, &n, &err);
    snprintf(msg, mlen, "%s", err.msg);
    if (count)
        *count = n;
    http_tokens_free(&t, n);
    return rc < 0 && want && strstr(err.msg, want);
}

static void test_files(void)
{
    char msg[600];
    size_t n = 0;
    /* A good file: comments, blank lines, tabs, CRLF, an admin. */
    cleanup_free char *good =
        s_write("good",
                "# tenants\n\n  alice\t" ALICE_TOKEN "\r\n   # indented comment\n"
                "bob " BOB_TOKEN " admin\n",
                0600);
    http_tenant_token_t *t = NULL;
    cb_error_t err = {0};
    int rc = http_tokens_load(good, &t, &n, &err);
    CB_OK(rc == 0, "a good tokens file loads (%s)", err.msg);
    CB_EQ_SIZE(n, 2, "two tokens");
    CB_OK(n == 2 && strcmp(t[0].tenant, "alice") == 0 && strcmp(t[0].token, ALICE_TOKEN) == 0 &&
              !t[0].admin,
          "alice, her token (CR stripped), no admin role");
    CB_OK(n == 2 && strcmp(t[1].tenant, "bob") == 0 && t[1].admin, "bob is an admin");
    http_tokens_free(&t, n);
    CB_OK(t == NULL, "http_tokens_free nulls the pointer");

    /* Malformed lines: each an error naming file:line. */
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"alice\n", "good-bad:1: expected 'TENANT TOKEN [admin]'"},
        {"# c\nalice " ALICE_TOKEN " root\n", "good-bad:2: expected"},
        {"alice " ALICE_TOKEN " admin extra\n", "good-bad:1: expected"},
        {"\n\nal/ice " ALICE_TOKEN "\n", "good-bad:3: a tenant's name"},
        {".alice " ALICE_TOKEN "\n", "good-bad:1: a tenant's name"},
        {"alice short\n", "good-bad:1: a token is 16 to 256"},
        {"alice tok\x01"
         "en-0123456789abc\n",
         "good-bad:1: a token is 16 to 256"},
        {"admin " ALICE_TOKEN "\n", "good-bad:1: the tenant name 'admin' is reserved"},
        {"local " ALICE_TOKEN "\n", "good-bad:1: the tenant name 'local' is reserved"},
        {"alice " ALICE_TOKEN "\nbob " ALICE_TOKEN "\n", "good-bad:2: the same token as"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cleanup_free char *p = s_write("good-bad", bad[i].text, 0600);
        CB_OK(s_load_fails(p, bad[i].want, NULL, msg, sizeof(msg)), "malformed %zu: '%s' (%s)", i,
              bad[i].want, msg);
    }
    {
        char huge[300];
        memset(huge, 'x', sizeof(huge));
        memcpy(huge, "alice ", 6);
        huge[sizeof(huge) - 2] = '\n';
        huge[sizeof(huge) - 1] = '\0';
        cleanup_free char *p = s_write("huge", huge, 0600);
        CB_OK(s_load_fails(p, "huge:1: a token is 16 to 256", NULL, msg, sizeof(msg)),
              "a 293-character token is refused (%s)", msg);
    }
    {
        cleanup_free char *p = cb_strdup_printf("%s/nul", s_dir);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        CB_OK(fd >= 0 && write(fd, "alice " ALICE_TOKEN "\0x\n", 30) == 30, "a file with a NUL");
        close(fd);
        CB_OK(s_load_fails(p, "NUL", NULL, msg, sizeof(msg)), "a NUL byte is refused (%s)", msg);
    }

    /* Modes, owners, links, types. */
    cleanup_free char *open_mode = s_write("m644", "alice " ALICE_TOKEN "\n", 0644);
    CB_OK(s_load_fails(open_mode, "has mode 0644: group or others may read or write it", NULL, msg,
                       sizeof(msg)),
          "mode 0644 is refused with the reason (%s)", msg);
    cleanup_free char *gw = s_write("m620", "alice " ALICE_TOKEN "\n", 0620);
    CB_OK(s_load_fails(gw, "mode 0620", NULL, msg, sizeof(msg)), "group-writable is refused");
    cleanup_free char *ok400 = s_write("m400", "alice " ALICE_TOKEN "\n", 0400);
    CB_OK(!s_load_fails(ok400, NULL, &n, msg, sizeof(msg)) && n == 1, "mode 0400 is fine (%s)",
          msg);
    cleanup_free char *link = cb_strdup_printf("%s/link", s_dir);
    CB_OK(symlink(good, link) == 0, "a symlink to a good file");
    CB_OK(s_load_fails(link, "is a symlink", NULL, msg, sizeof(msg)), "a symlink is refused (%s)",
          msg);
    cleanup_free char *other = s_write("other-owner", "alice " ALICE_TOKEN "\n", 0600);
    if (geteuid() == 0 && chown(other, 4242, 4242) == 0)
        CB_OK(s_load_fails(other, "owned by uid 4242", NULL, msg, sizeof(msg)),
              "a file someone else owns is refused (%s)", msg);
    else
        CB_OK(1, "# SKIP a file someone else owns: not root");
    CB_OK(s_load_fails("/nonexistent/tokens", "No such file", NULL, msg, sizeof(msg)),
          "a missing file: the reason (%s)", msg);

    /* A directory: every file, in name order; its own mode counts; a FIFO is refused at once. */
    cleanup_free char *dir = cb_strdup_printf("%s/d", s_dir);
    CB_OK(mkdir(dir, 0700) == 0, "a tokens directory");
    cleanup_free char *f1 = s_write("d/10-alice", "alice " ALICE_TOKEN "\n", 0600);
    cleanup_free char *f2 = s_write("d/20-bob", "bob " BOB_TOKEN " admin\n", 0600);
    cleanup_free char *f3 = s_write("d/.hidden", "garbage\n", 0644);
    CB_OK(!s_load_fails(dir, NULL, &n, msg, sizeof(msg)) && n == 2,
          "a directory's files are read, dotfiles skipped (%zu tokens; %s)", n, msg);
    cleanup_free char *dup = s_write("d/30-dup", "carol " ALICE_TOKEN "\n", 0600);
    CB_OK(s_load_fails(dir, "d/30-dup:1: the same token as", NULL, msg, sizeof(msg)) &&
              strstr(msg, "d/10-alice:1"),
          "a token repeated in another file: both places named (%s)", msg);
    unlink(dup);
    chmod(dir, 0755);
    CB_OK(s_load_fails(dir, "has mode 0755", NULL, msg, sizeof(msg)),
          "a directory others may read is refused (%s)", msg);
    chmod(dir, 0700);
    cleanup_free char *fifo = cb_strdup_printf("%s/d/40-fifo", s_dir);
    CB_OK(mkfifo(fifo, 0600) == 0, "a FIFO in the directory");
    CB_OK(s_load_fails(dir, "not a regular file", NULL, msg, sizeof(msg)),
          "a FIFO is refused without blocking (%s)", msg);
    unlink(fifo);
    cleanup_free char *dlink = cb_strdup_printf("%s/d/50-link", s_dir);
    CB_OK(symlink(good, dlink) == 0 && s_load_fails(dir, "is a symlink", NULL, msg, sizeof(msg)),
          "a symlink in the directory is refused (%s)", msg);
    unlink(dlink);
    cleanup_free char *f4 = s_write("d/60-open", "dave " BOB_TOKEN "x\n", 0604);
    CB_OK(s_load_fails(dir, "60-open' has mode 0604", NULL, msg, sizeof(msg)),
          "a readable file in the directory is refused (%s)", msg);
    unlink(f4);
    unlink(f1);
    unlink(f2);
    unlink(f3);
    rmdir(dir);
}

static const http_tenant_token_t s_tenants[] = {
    {ALICE_TOKEN, "alice", false},
    {BOB_TOKEN, "bob", true},
};

static http_server_t *s_server(zloop_t *loop, bool no_auth)
{
    cb_error_t err = {0};
    http_server_t *srv = http_server_new(loop,
                                         &(http_config_t){.listen = "127.0.0.1:0",
                                                          .token = no_auth ? NULL : ADMIN_TOKEN,
                                                          .no_auth = no_auth,
                                                          .tenants = s_tenants,
                                                          .tenant_count = 2},
                                         &err);
    CB_OK(srv, "a server with two tenants (%s)", err.msg);
    return srv;
}

static bool s_is(const cb_principal_t *who, const char *tenant, bool admin)
{
    return who && strcmp(who->tenant, tenant) == 0 && who->admin == admin;
}

static void test_principals(zloop_t *loop)
{
    cb_error_t err = {0};
    http_server_t *bad = http_server_new(
        loop,
        &(http_config_t){
            .listen = "127.0.0.1:0", .token = ALICE_TOKEN, .tenants = s_tenants, .tenant_count = 1},
        &err);
    CB_OK(!bad && strstr(err.msg, "same token as the server's own token"),
          "a tenant with the server's own token is refused (%s)", err.msg);
    http_tenant_token_t badname[] = {{ALICE_TOKEN, "a b", false}};
    bad = http_server_new(
        loop, &(http_config_t){.listen = "127.0.0.1:0", .tenants = badname, .tenant_count = 1},
        &err);
    CB_OK(!bad, "a tenant with a bad name is refused (%s)", err.msg);

    http_server_t *srv = s_server(loop, false);
    const char *a = "Bearer " ALICE_TOKEN;
    CB_OK(s_is(http_check_token(srv, a, strlen(a), NULL), "alice", false), "alice's Bearer");
    const char *b = "token " BOB_TOKEN "  ";
    CB_OK(s_is(http_check_token(srv, b, strlen(b), NULL), "bob", true), "bob's 'token' (admin)");
    const char *s = "Bearer " ADMIN_TOKEN;
    CB_OK(s_is(http_check_token(srv, s, strlen(s), NULL), CB_TENANT_ADMIN, true),
          "the server's token: the admin");
    CB_OK(s_is(http_check_token(srv, NULL, 0, ALICE_TOKEN), "alice", false), "alice's ?token=");
    CB_OK(s_is(http_check_api_key(srv, ALICE_TOKEN, strlen(ALICE_TOKEN)), "alice", false),
          "alice's X-API-Key");
    const char *pre = "Bearer alice-token-012345678";
    CB_OK(!http_check_token(srv, pre, strlen(pre), NULL), "a prefix of alice's token: nobody");
    const char *longer = "Bearer " ALICE_TOKEN "9";
    CB_OK(!http_check_token(srv, longer, strlen(longer), NULL), "alice's token and more: nobody");
    char nul[64];
    int len = snprintf(nul, sizeof(nul), "Bearer %s", ALICE_TOKEN);
    nul[len++] = '\0';
    nul[len++] = 'x';
    CB_OK(!http_check_token(srv, nul, (size_t)len, NULL), "alice's token, a NUL and more: nobody");
    CB_OK(!http_check_token(srv, "Bearer ", 7, NULL) && !http_cred_find(srv, "", 0),
          "the empty token: nobody");

    /* Sandbox tokens' principal owns nothing; admins everything. */
    CB_OK(!cb_principal_may(&http_principal_nobody, ""), "the empty tenant never matches \"\"");
    CB_OK(!cb_principal_may(&http_principal_nobody, "alice"), "nor alice's");
    cb_principal_t alice = {"alice", false};
    CB_OK(cb_principal_may(&alice, "alice") && !cb_principal_may(&alice, "bob") &&
              !cb_principal_may(&alice, NULL) && !cb_principal_may(&alice, "alice2"),
          "alice reaches alice's only");
    CB_OK(cb_principal_may(&http_principal_admin, "bob") &&
              cb_principal_may(&http_principal_admin, NULL),
          "an admin reaches everything");
    http_server_destroy(&srv);

    srv = s_server(loop, true);
    CB_OK(s_is(http_check_token(srv, NULL, 0, NULL), CB_TENANT_ADMIN, true),
          "no_auth: no token is the admin");
    CB_OK(s_is(http_check_token(srv, a, strlen(a), NULL), "alice", false),
          "no_auth: alice's token is still alice");
    http_server_destroy(&srv);
}

/* A cookie value with a valid MAC under srv's key for body (to forge expiry and such). */
static char *s_signed(const http_server_t *srv, const char *body)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mlen = 0;
    HMAC(EVP_sha256(), srv->login_key, sizeof(srv->login_key), (const unsigned char *)body,
         strlen(body), mac, &mlen);
    char hex[65];
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    return cb_strdup_printf("cellblock_login=%s.%s", body, hex);
}

static bool s_cookie_is(const http_server_t *srv, const char *header, const char *tenant,
                        bool admin)
{
    cb_principal_t who = {0};
    char t[CB_TENANT_NAME_MAX + 1];
    if (!http_login_cookie_ok(srv, header, &who, t))
        return false;
    return tenant && strcmp(who.tenant, tenant) == 0 && who.admin == admin;
}

static void test_cookies(zloop_t *loop)
{
    http_server_t *srv = s_server(loop, false);
    http_server_t *other = s_server(loop, false);
    http_request_t req = {0};
    snprintf(req.tenant, sizeof(req.tenant), "alice");
    req.who = (cb_principal_t){req.tenant, false};
    cleanup_free char *set = http_login_cookie(srv, &req, 60);
    CB_OK(set && strncmp(set, "cellblock_login=", 16) == 0 && strstr(set, "; Path=/") &&
              strstr(set, "; HttpOnly") && strstr(set, "; SameSite=Strict") &&
              strstr(set, "; Max-Age=60"),
          "a login cookie: HttpOnly, SameSite=Strict, Path=/, Max-Age (%s)", set ? set : "none");
    cleanup_free char *cookie = set ? cb_xstrndup(set, strcspn(set, ";")) : cb_xstrdup("");
    CB_OK(s_cookie_is(srv, cookie, "alice", false), "it logs in as alice");
    cleanup_free char *among = cb_strdup_printf("a=b; cellblock_login=stale; %s; c=d", cookie);
    CB_OK(s_cookie_is(srv, among, "alice", false), "… among other cookies, after a stale one");
    CB_OK(!s_cookie_is(other, cookie, "alice", false), "another server's cookie is refused");

    /* Tampered: the tenant (same length, and longer), the role, the expiry. */
    cleanup_free char *t1 = cb_xstrdup(cookie);
    char *ten = strstr(t1, ".alice.");
    if (ten)
        memcpy(ten + 1, "bobby", 5);
    CB_OK(ten && !s_cookie_is(srv, t1, "bobby", false) && !s_cookie_is(srv, t1, "alice", false),
          "a tampered tenant is refused");
    cleanup_free char *t2 = cb_xstrdup(cookie);
    char *role = strstr(t2, "v1.t.");
    if (role)
        role[3] = 'a';
    CB_OK(role && !s_cookie_is(srv, t2, "alice", true) && !s_cookie_is(srv, t2, "alice", false),
          "a tampered role (t -> a) is refused");
    cleanup_free char *t3 = cb_xstrdup(cookie);
    char *exp = strstr(t3, "v1.t.");
    if (exp)
        exp[5] = exp[5] == '9' ? '8' : '9';
    CB_OK(exp && !s_cookie_is(srv, t3, "alice", false), "a tampered expiry is refused");
    cleanup_free char *t4 = cb_xstrdup(cookie);
    t4[strlen(t4) - 1] = t4[strlen(t4) - 1] == '0' ? '1' : '0';
    CB_OK(!s_cookie_is(srv, t4, "alice", false), "a tampered MAC is refused");
    cleanup_free char *t5 = cb_strdup_printf("%sA", cookie);
    CB_OK(!s_cookie_is(srv, t5, "alice", false), "a longer MAC is refused");

    /* Expired, with a valid MAC; and the shapes a valid MAC may still not hold. */
    cleanup_free char *body = cb_strdup_printf("v1.t.%lld.alice", (long long)time(NULL) - 1);
    cleanup_free char *expired = s_signed(srv, body);
    CB_OK(!s_cookie_is(srv, expired, "alice", false), "an expired cookie is refused");
    cleanup_free char *body2 = cb_strdup_printf("v1.a.%lld.alice", (long long)time(NULL) + 60);
    cleanup_free char *forged = s_signed(srv, body2);
    CB_OK(s_cookie_is(srv, forged, "alice", true), "(a cookie signed with the key is trusted)");
    cleanup_free char *weird = s_signed(srv, "v1.t.99999999999.a b");
    CB_OK(!s_cookie_is(srv, weird, "a b", false), "a signed value with a bad tenant is refused");

    /* Who may not log in: a sandbox token's principal. */
    http_request_t sbx = {0};
    sbx.who = http_principal_nobody;
    CB_OK(http_login_cookie(srv, &sbx, 0) == NULL, "a sandbox token's principal gets no cookie");
    CB_OK(strcmp(http_logout_cookie(), "cellblock_login=; Path=/; HttpOnly; SameSite=Strict; "
                                       "Max-Age=0") == 0,
          "the logout cookie clears it");

    /* Forwards: a token names its principal; the login cookie is neither a credential there
     * nor passed upstream. */
    http_fwd_plan_t p;
    const char *h1 = "GET /sandboxes/" SB "/ports/8000/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer " ALICE_TOKEN "\r\n\r\n";
    http_fwd_plan(srv, h1, strlen(h1), &p);
    CB_OK(p.is_forward && !p.status && s_is(p.who, "alice", false),
          "a forward with alice's token acts for alice");
    CB_OK(p.head && !strstr(p.head, ALICE_TOKEN), "… and her token does not go upstream");
    http_fwd_plan_clear(&p);
    const char *h1b = "GET /sandboxes/" SB "/ports/8000/?token=" ALICE_TOKEN
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: nope\r\n\r\n";
    http_fwd_plan(srv, h1b, strlen(h1b), &p);
    CB_OK(p.is_forward && !p.status && s_is(p.who, "alice", false), "… ?token= as well");
    http_fwd_plan_clear(&p);
    cleanup_free char *h2 = cb_strdup_printf("GET /sandboxes/" SB "/ports/8000/ HTTP/1.1\r\n"
                                             "Host: 127.0.0.1\r\nCookie: %s\r\n\r\n",
                                             cookie);
    http_fwd_plan(srv, h2, strlen(h2), &p);
    CB_EQ_INT(p.status, 403,
              "a logged-in browser never gets a port by the path form, the page's own origin");
    http_fwd_plan_clear(&p);
    cleanup_free char *sig0 = http_forward_sign(srv, SB, 8000, (int64_t)time(NULL) + 60);
    cleanup_free char *h2b =
        cb_strdup_printf("GET /sandboxes/" SB "/ports/8000/?cb_sig=%s HTTP/1.1\r\n"
                         "Host: 127.0.0.1\r\nCookie: cellblock_login=stale\r\n\r\n",
                         sig0);
    http_fwd_plan(srv, h2b, strlen(h2b), &p);
    CB_EQ_INT(p.status, 403, "… not even by a signed link");
    http_fwd_plan_clear(&p);
    cleanup_free char *h2c = cb_strdup_printf(
        "GET / HTTP/1.1\r\nHost: 8000-" SB ".localhost:1\r\nCookie: %s\r\n\r\n", cookie);
    http_fwd_plan(srv, h2c, strlen(h2c), &p);
    CB_EQ_INT(p.status, 401, "a login cookie alone does not open a forward by the host form");
    http_fwd_plan_clear(&p);
    cleanup_free char *h3 =
        cb_strdup_printf("GET / HTTP/1.1\r\nHost: 8000-" SB ".localhost:1\r\n"
                         "Authorization: Bearer " BOB_TOKEN "\r\nCookie: x=1; %s; y=2\r\n\r\n",
                         cookie);
    http_fwd_plan(srv, h3, strlen(h3), &p);
    CB_OK(!p.status && p.head && !strstr(p.head, "cellblock_login") &&
              strstr(p.head, "Cookie: x=1; y=2\r\n") && s_is(p.who, "bob", true),
          "the login cookie is stripped from what goes upstream");
    http_fwd_plan_clear(&p);
    cleanup_free char *sig = http_forward_sign(srv, SB, 8000, (int64_t)time(NULL) + 60);
    cleanup_free char *h4 = cb_strdup_printf("GET /sandboxes/" SB "/ports/8000/ HTTP/1.1\r\n"
                                             "Host: 127.0.0.1\r\nCookie: cellblock_port=%s\r\n\r\n",
                                             sig);
    http_fwd_plan(srv, h4, strlen(h4), &p);
    CB_OK(!p.status && p.who == NULL, "a signed link's cookie is a capability: no principal");
    http_fwd_plan_clear(&p);
    cleanup_free char *stok = http_sandbox_token(srv, SB);
    cleanup_free char *h5 = cb_strdup_printf("GET /sandboxes/" SB "/ports/8000/ HTTP/1.1\r\n"
                                             "Host: 127.0.0.1\r\nE2B-Traffic-Access-Token: %s\r\n"
                                             "\r\n",
                                             stok);
    http_fwd_plan(srv, h5, strlen(h5), &p);
    CB_OK(!p.status && p.who == NULL, "the sandbox's token: no principal");
    http_fwd_plan_clear(&p);
    http_server_destroy(&other);
    http_server_destroy(&srv);
}

int main(void)
{
    zsys_init();
    zsys_set_logstream(NULL);
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        return 1;
    }
    zloop_t *loop = zloop_new();
    test_files();
    test_principals(loop);
    test_cookies(loop);
    zloop_destroy(&loop);
    cleanup_free char *rm = cb_strdup_printf("rm -rf '%s'", s_dir);
    if (system(rm) != 0)
        CB_DIAG("could not remove %s", s_dir);
    return cb_tap_done();
}
