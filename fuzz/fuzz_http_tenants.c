/* fuzz_http_tenants.c: tenants' credentials from outside (http/tokens.c, http/login.c,
 * http/checks.c): a tokens file's text, and a Cookie header.
 *
 * The input's first byte says which: even, the rest is a tokens file; odd, a Cookie header.
 *
 * What must hold, besides no crash or leak:
 *   - a tokens file that parses holds only valid, unreserved tenant names and valid, unique
 *     tokens; a server made with them (beside its own token) knows each token as exactly its
 *     line's principal, and a token one byte longer as nobody;
 *   - no Cookie header the input makes logs anyone in (the MAC's key is made at start, so no
 *     input can hold a valid MAC); a cookie the server made for a tenant named by the input
 *     logs in as exactly that tenant, and with any one byte of its value changed, as nobody. */
#include <string.h>

#include "cb/alloc.h"
#include "fuzz.h"
#include "http_private.h"

#define S_TOKEN "f0e1d2c3b4a5968778695a4b3c2d1e0f"

static zloop_t *s_loop;
static http_server_t *s_http;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    zsys_init();
    zsys_set_logstream(NULL);
    s_loop = zloop_new();
    s_http =
        http_server_new(s_loop, &(http_config_t){.listen = "127.0.0.1:0", .token = S_TOKEN}, NULL);
    FUZZ_CHECK(s_http);
    return 0;
}

static void s_tokens(const char *text, size_t len)
{
    http_tenant_token_t *t = NULL;
    size_t n = 0;
    cb_error_t err = {0};
    if (http_tokens_parse(text, len, "fuzz", &t, &n, &err) < 0) {
        FUZZ_CHECK(!t && n == 0 && strstr(err.msg, "fuzz"));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(cb_tenant_name_ok(t[i].tenant));
        FUZZ_CHECK(strcmp(t[i].tenant, CB_TENANT_ADMIN) && strcmp(t[i].tenant, CB_TENANT_LOCAL));
        FUZZ_CHECK(http_token_text_ok(t[i].token, strlen(t[i].token)));
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(t[i].token, t[j].token) != 0);
    }
    http_server_t *srv = http_server_new(
        s_loop,
        &(http_config_t){
            .listen = "127.0.0.1:0", .token = S_TOKEN, .tenants = t, .tenant_count = n},
        &err);
    bool has_server_token = false;
    for (size_t i = 0; i < n; i++)
        has_server_token = has_server_token || strcmp(t[i].token, S_TOKEN) == 0;
    FUZZ_CHECK(srv || has_server_token);
    for (size_t i = 0; srv && i < n; i++) {
        char *bearer = cb_strdup_printf("Bearer %s", t[i].token);
        const cb_principal_t *who = http_check_token(srv, bearer, strlen(bearer), NULL);
        FUZZ_CHECK(who && strcmp(who->tenant, t[i].tenant) == 0 && who->admin == t[i].admin);
        /* One byte more is nobody, unless another line has exactly that token. */
        char *longer = cb_strdup_printf("%sx", bearer);
        bool listed = false;
        for (size_t j = 0; j < n; j++)
            listed = listed || strcmp(t[j].token, longer + 7) == 0;
        FUZZ_CHECK(listed || !http_check_token(srv, longer, strlen(longer), NULL));
        free(longer);
        free(bearer);
    }
    http_server_destroy(&srv);
    http_tokens_free(&t, n);
}

static void s_cookie(const char *header, size_t len)
{
    cb_principal_t who = {0};
    char tenant[CB_TENANT_NAME_MAX + 1];
    FUZZ_CHECK(!http_login_cookie_ok(s_http, header, &who, tenant));
    /* The input as a tenant's name: a cookie for it round-trips, and no changed byte passes. */
    if (!cb_tenant_name_ok(header))
        return;
    http_request_t req = {0};
    snprintf(req.tenant, sizeof req.tenant, "%s", header);
    req.who = (cb_principal_t){req.tenant, len % 2 == 1};
    char *set = http_login_cookie(s_http, &req, 60);
    FUZZ_CHECK(set);
    char *value = cb_xstrndup(set, strcspn(set, ";"));
    FUZZ_CHECK(http_login_cookie_ok(s_http, value, &who, tenant));
    FUZZ_CHECK(strcmp(who.tenant, header) == 0 && who.admin == req.who.admin);
    size_t at = strlen("cellblock_login=") + len % (strlen(value) - strlen("cellblock_login="));
    value[at] = value[at] == 'a' ? 'b' : 'a';
    FUZZ_CHECK(!http_login_cookie_ok(s_http, value, &who, tenant));
    free(value);
    free(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    char *text = fuzz_strndup(data + 1, size - 1);
    if (data[0] % 2 == 0)
        s_tokens(text, size - 1);
    else if (strlen(text) == size - 1)
        s_cookie(text, size - 1);
    free(text);
    return 0;
}
