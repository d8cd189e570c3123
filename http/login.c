/* http/login.c: login cookies, so that a person's browser (the page at /) need not hold a
 * token in script.
 *
 * A login cookie names a principal (a tenant and whether it is an admin) until an expiry, and
 * nothing else. Its value is
 *
 *     v1.ROLE.EXPIRES.TENANT.MAC
 *
 * ROLE "a" (admin) or "t" (tenant), EXPIRES seconds since the epoch, TENANT per
 * cb_tenant_name_ok (which may hold '.', so it comes last but one), and MAC the HMAC-SHA256 in
 * lowercase hex of everything before the last '.', under login_key: 32 random bytes made with
 * the server, kept nowhere else, so a cookie is good only while the server that made it runs.
 *
 * Checked on the server thread (server.c, s_authorized), for every route but the sandbox-token
 * ones; the forward front door never reads it (forward.c strips it from what goes upstream).
 * The MAC is compared first, in constant time (CRYPTO_memcmp over the 64 hex digits); only a
 * value whose MAC holds is parsed. The cookie is HttpOnly (script cannot read it),
 * SameSite=Strict (another site cannot make the browser send it) and Path=/. */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "http_private.h"

#define LOGIN_COOKIE "cellblock_login"
#define LOGIN_DEFAULT_AGE_S (12 * 3600)
#define LOGIN_VALUE_MAX 256 /* a longer value is not one of ours */

/* The MAC of the len bytes at msg under the server's login key, as 64 hex digits. */
static void s_mac_hex(const http_server_t *self, const char *msg, size_t len, char out[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mlen = 0;
    HMAC(EVP_sha256(), self->login_key, sizeof(self->login_key), (const unsigned char *)msg, len,
         mac, &mlen);
    for (unsigned i = 0; i < 32 && i < mlen; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    out[64] = '\0';
    OPENSSL_cleanse(mac, sizeof(mac));
}

char *http_login_cookie(const http_server_t *self, const http_request_t *req, int max_age_s)
{
    const cb_principal_t *who = http_request_principal(req);
    if (!self || !who || !cb_tenant_name_ok(who->tenant))
        return NULL; /* a sandbox token's principal cannot log in */
    if (max_age_s <= 0)
        max_age_s = LOGIN_DEFAULT_AGE_S;
    long long expires = (long long)time(NULL) + max_age_s;
    cleanup_free char *body =
        cb_strdup_printf("v1.%s.%lld.%s", who->admin ? "a" : "t", expires, who->tenant);
    char mac[65];
    s_mac_hex(self, body, strlen(body), mac);
    char *cookie = cb_strdup_printf("%s=%s.%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d",
                                    LOGIN_COOKIE, body, mac, max_age_s);
    OPENSSL_cleanse(mac, sizeof(mac));
    return cookie;
}

const char *http_logout_cookie(void)
{
    return LOGIN_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0";
}

/* One cookie value (len bytes): its principal, when its MAC holds and it has not expired. */
static bool s_value_ok(const http_server_t *self, const char *v, size_t len, cb_principal_t *who,
                       char tenant[CB_TENANT_NAME_MAX + 1])
{
    if (len > LOGIN_VALUE_MAX || len < 65)
        return false;
    size_t body_len = len - 65;
    if (v[body_len] != '.')
        return false;
    char mac[65];
    s_mac_hex(self, v, body_len, mac);
    bool mac_ok = CRYPTO_memcmp(mac, v + body_len + 1, 64) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    if (!mac_ok)
        return false;
    /* Ours, as we wrote it: "v1.R.EXPIRES.TENANT". */
    char body[LOGIN_VALUE_MAX + 1];
    memcpy(body, v, body_len);
    body[body_len] = '\0';
    if (strncmp(body, "v1.", 3) != 0 || (body[3] != 'a' && body[3] != 't') || body[4] != '.')
        return false;
    char *end = NULL;
    long long expires = strtoll(body + 5, &end, 10);
    if (!end || end == body + 5 || *end != '.' || !cb_tenant_name_ok(end + 1))
        return false;
    if (expires < (long long)time(NULL))
        return false;
    snprintf(tenant, CB_TENANT_NAME_MAX + 1, "%s", end + 1);
    *who = (cb_principal_t){tenant, body[3] == 'a'};
    return true;
}

bool http_login_cookie_ok(const http_server_t *self, const char *cookie_header, cb_principal_t *who,
                          char tenant[CB_TENANT_NAME_MAX + 1])
{
    static const char name[] = LOGIN_COOKIE "=";
    const size_t nlen = sizeof(name) - 1;
    /* "a=b; cellblock_login=V; c=d": every cellblock_login is tried (a stale one may come
     * first, from another path). */
    for (const char *p = cookie_header; p && *p;) {
        while (*p == ' ' || *p == ';')
            p++;
        size_t n = strcspn(p, ";");
        if (n > nlen && strncmp(p, name, nlen) == 0) {
            size_t vlen = n - nlen;
            while (vlen > 0 && p[nlen + vlen - 1] == ' ')
                vlen--;
            if (s_value_ok(self, p + nlen, vlen, who, tenant))
                return true;
        }
        p += n;
    }
    return false;
}
