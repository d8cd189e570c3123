/* policy.c: a sandbox's network policy: parsing it (JSON, string), describing it, and judging
 * a destination against it.
 *
 * Why here, apart from the proxy: the verdict is the security promise, so it is a pure function
 * of the policy and the destination, tested alone (test_policy.c). How: a policy is two arrays
 * of parsed entries (allow, deny). A destination is judged twice: first the name the client
 * asked for (before anything is looked up: a denied name is never resolved), then each address
 * it resolved to. The second step refuses the address classes a sandbox must never reach
 * (loopback, private, link-local, metadata...) unless an allow entry names that address or a
 * block containing it; an IPv6 address that carries an IPv4 one (mapped, compatible, NAT64, 6to4)
 * is judged as that IPv4 address, so ::ffff:127.0.0.1 is loopback. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cb/alloc.h"
#include "cb/cleanup.h"
#include "cb/error.h"
#include "egress_private.h"

/* ---- presets ---- */

typedef struct {
    const char *name;
    const char *const *hosts; /* each allowed on ports 80 and 443 */
} s_preset_t;

static const char *const s_packages[] = {
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "*.npmjs.org",
    "registry.yarnpkg.com",
    "crates.io",
    "*.crates.io",
    "static.crates.io",
    "index.crates.io",
    "proxy.golang.org",
    "sum.golang.org",
    "github.com",
    "*.githubusercontent.com",
    "codeload.github.com",
    NULL,
};

static const s_preset_t s_presets[] = {
    {"packages", s_packages},
};

static const s_preset_t *s_preset_find(const char *name)
{
    for (size_t i = 0; i < sizeof s_presets / sizeof s_presets[0]; i++)
        if (strcmp(s_presets[i].name, name) == 0)
            return &s_presets[i];
    return NULL;
}

/* ---- entries ---- */

static int s_parse_port(const char *s, uint16_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5)
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* addr[/prefix] into e (family, bytes, prefix). */
static int s_parse_net(const char *s, egress_entry_t *e)
{
    char buf[EGRESS_MAX_ENTRY_LEN + 1];
    snprintf(buf, sizeof buf, "%s", s);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    if (inet_pton(AF_INET, buf, e->addr) == 1) {
        e->family = AF_INET;
        e->prefix = 32;
    } else if (inet_pton(AF_INET6, buf, e->addr) == 1) {
        e->family = AF_INET6;
        e->prefix = 128;
    } else {
        return -1;
    }
    if (slash) {
        const char *p = slash + 1;
        size_t n = strlen(p);
        if (n == 0 || n > 3)
            return -1;
        unsigned v = 0;
        for (size_t i = 0; i < n; i++) {
            if (!isdigit((unsigned char)p[i]))
                return -1;
            v = v * 10 + (unsigned)(p[i] - '0');
        }
        if (v > e->prefix)
            return -1;
        e->prefix = v;
    }
    size_t bytes = e->family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < bytes; i++) {
        unsigned bits = e->prefix > i * 8 ? e->prefix - (unsigned)i * 8 : 0;
        uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
        e->addr[i] &= mask;
    }
    return 0;
}

/* A host name: labels of [a-z0-9_-], 1..63 each, no empty label. s is lower case already. */
static bool s_name_valid(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (isalnum((unsigned char)c) || c == '-' || c == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label > 0;
}

int egress_entry_parse(const char *text, egress_entry_t *out, cb_error_t *err)
{
    memset(out, 0, sizeof *out);
    size_t len = strlen(text);
    if (len == 0)
        return cb_error_fail(err, CB_ERR_INVALID, "network policy: empty entry");
    if (len > EGRESS_MAX_ENTRY_LEN)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "network policy: entry '%.40s...' is longer than %d characters", text,
                             EGRESS_MAX_ENTRY_LEN);
    char buf[EGRESS_MAX_ENTRY_LEN + 1];
    for (size_t i = 0; i <= len; i++)
        buf[i] = (char)tolower((unsigned char)text[i]);

    /* Split off the port: "[v6]:port", "host:port"; a bare IPv6 address (two colons or more)
     * takes no port. */
    char *host = buf;
    const char *port = NULL;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close)
            return cb_error_fail(err, CB_ERR_INVALID, "network policy: bad entry '%s'", text);
        *close = '\0';
        host = buf + 1;
        char *rest = close + 1;
        if (*rest == '/') { /* "[fd00::]/8" */
            char *colon = strchr(rest, ':');
            if (colon)
                *colon = '\0', port = colon + 1;
            memmove(close, rest, strlen(rest) + 1); /* host + "/prefix" */
        } else if (*rest == ':') {
            port = rest + 1;
        } else if (*rest) {
            return cb_error_fail(err, CB_ERR_INVALID, "network policy: bad entry '%s'", text);
        }
        if (!strchr(host, ':'))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "network policy: bad entry '%s' (brackets hold an IPv6 address)",
                                 text);
    } else {
        char *colon = strchr(buf, ':');
        if (colon && !strchr(colon + 1, ':'))
            *colon = '\0', port = colon + 1;
    }
    if (port && s_parse_port(port, &out->port) < 0)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "network policy: bad port in entry '%s' (1 to 65535)", text);

    size_t hl = strlen(host);
    if (hl > 0 && host[hl - 1] == '.' && !(hl == 2 && host[0] == '*'))
        host[--hl] = '\0';
    if (hl == 0)
        return cb_error_fail(err, CB_ERR_INVALID, "network policy: bad entry '%s'", text);

    if (strcmp(host, "*") == 0) {
        out->kind = EGRESS_ENTRY_ANY;
        return 0;
    }
    if (strncmp(host, "*.", 2) == 0) {
        if (!s_name_valid(host + 2))
            return cb_error_fail(err, CB_ERR_INVALID, "network policy: bad wildcard '%s'", text);
        out->kind = EGRESS_ENTRY_WILD;
        snprintf(out->name, sizeof out->name, "%s", host + 2);
        return 0;
    }
    bool looks_net = strchr(host, ':') || strchr(host, '/');
    if (!looks_net) { /* all digits and dots: an IPv4 address, or nothing */
        looks_net = true;
        for (const char *p = host; *p; p++)
            if (!isdigit((unsigned char)*p) && *p != '.')
                looks_net = false;
    }
    if (looks_net) {
        if (s_parse_net(host, out) < 0)
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "network policy: bad address or CIDR block '%s'", text);
        out->kind = EGRESS_ENTRY_NET;
        return 0;
    }
    if (!s_name_valid(host))
        return cb_error_fail(err, CB_ERR_INVALID, "network policy: bad host name '%s'", text);
    out->kind = EGRESS_ENTRY_NAME;
    snprintf(out->name, sizeof out->name, "%s", host);
    return 0;
}

void egress_entry_format(const egress_entry_t *e, char *buf, size_t size)
{
    char host[EGRESS_MAX_ENTRY_LEN + 8];
    switch (e->kind) {
    case EGRESS_ENTRY_ANY: snprintf(host, sizeof host, "*"); break;
    case EGRESS_ENTRY_WILD: snprintf(host, sizeof host, "*.%s", e->name); break;
    case EGRESS_ENTRY_NAME: snprintf(host, sizeof host, "%s", e->name); break;
    case EGRESS_ENTRY_NET: {
        char a[INET6_ADDRSTRLEN];
        inet_ntop(e->family, e->addr, a, sizeof a);
        bool full = e->prefix == (e->family == AF_INET ? 32u : 128u);
        bool v6 = e->family == AF_INET6;
        if (full)
            snprintf(host, sizeof host, v6 && e->port ? "[%s]" : "%s", a);
        else
            snprintf(host, sizeof host, v6 && e->port ? "[%s]/%u" : "%s/%u", a, e->prefix);
        break;
    }
    }
    if (e->port)
        snprintf(buf, size, "%s:%u", host, e->port);
    else
        snprintf(buf, size, "%s", host);
}

int egress_policy_add(egress_policy_t *self, const char *text, bool deny, cb_error_t *err)
{
    if (self->n_allow + self->n_deny >= EGRESS_MAX_ENTRIES)
        return cb_error_fail(err, CB_ERR_INVALID, "network policy: more than %d entries (at '%s')",
                             EGRESS_MAX_ENTRIES, text);
    egress_entry_t e;
    if (egress_entry_parse(text, &e, err) < 0)
        return -1;
    egress_entry_t **list = deny ? &self->deny : &self->allow;
    size_t *n = deny ? &self->n_deny : &self->n_allow;
    for (size_t i = 0; i < *n; i++) /* a repeated entry adds nothing */
        if (memcmp(&(*list)[i], &e, sizeof e) == 0)
            return 0;
    *list = cb_xrealloc(*list, (*n + 1) * sizeof **list);
    (*list)[(*n)++] = e;
    return 0;
}

/* ---- construction ---- */

static egress_policy_t *s_policy_new(void) { return cb_xcalloc(1, sizeof(egress_policy_t)); }

void egress_policy_destroy(egress_policy_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    egress_policy_t *self = *self_p;
    free(self->allow);
    free(self->deny);
    free(self);
    *self_p = NULL;
}

static void s_policy_freep(egress_policy_t **p) { egress_policy_destroy(p); }
#define cleanup_policy __attribute__((cleanup(s_policy_freep)))

egress_policy_t *egress_policy_copy(const egress_policy_t *self)
{
    if (!self)
        return NULL;
    egress_policy_t *c = s_policy_new();
    *c = *self;
    c->allow = c->n_allow ? cb_xmalloc(c->n_allow * sizeof *c->allow) : NULL;
    c->deny = c->n_deny ? cb_xmalloc(c->n_deny * sizeof *c->deny) : NULL;
    if (c->n_allow)
        memcpy(c->allow, self->allow, c->n_allow * sizeof *c->allow);
    if (c->n_deny)
        memcpy(c->deny, self->deny, c->n_deny * sizeof *c->deny);
    return c;
}

/* Add a preset's hosts (ports 80 and 443) to the allow list. */
static int s_add_preset(egress_policy_t *p, const char *name, cb_error_t *err)
{
    const s_preset_t *pr = s_preset_find(name);
    if (!pr)
        return cb_error_fail(err, CB_ERR_INVALID, "network policy: unknown preset '%s'", name);
    for (const char *const *h = pr->hosts; *h; h++)
        for (int i = 0; i < 2; i++) {
            char e[EGRESS_MAX_ENTRY_LEN + 8];
            snprintf(e, sizeof e, "%s:%d", *h, i ? 443 : 80);
            if (egress_policy_add(p, e, false, err) < 0)
                return -1;
        }
    return 0;
}

/* A JSON array of entry strings into the allow or deny list. ports: a mask of the ports the
 * entries without a port get (E2B's allowHTTP / allowHTTPS: 1 = 80, 2 = 443; 0 = any port). */
static int s_add_list(egress_policy_t *p, const json_t *arr, const char *key, bool deny,
                      unsigned ports, bool e2b_deny, cb_error_t *err)
{
    if (!json_is_array(arr))
        return cb_error_fail(err, CB_ERR_INVALID, "network policy: '%s' must be a list of strings",
                             key);
    if (json_array_size(arr) > EGRESS_MAX_ENTRIES)
        return cb_error_fail(err, CB_ERR_INVALID, "network policy: '%s' has more than %d entries",
                             key, EGRESS_MAX_ENTRIES);
    size_t i;
    const json_t *v;
    json_array_foreach (arr, i, v) {
        if (!json_is_string(v))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "network policy: entry %zu of '%s' is not a string", i, key);
        const char *s = json_string_value(v);
        if (strlen(s) != json_string_length(v))
            return cb_error_fail(err, CB_ERR_INVALID,
                                 "network policy: entry %zu of '%s' holds a NUL byte", i, key);
        /* E2B's denyOut ["0.0.0.0/0"] means "everything not allowed": our default already. */
        if (e2b_deny && (strcmp(s, "0.0.0.0/0") == 0 || strcmp(s, "::/0") == 0))
            continue;
        egress_entry_t e;
        if (ports && egress_entry_parse(s, &e, err) == 0 && e.port == 0) {
            for (int b = 0; b < 2; b++) {
                if (!(ports & (1u << b)))
                    continue;
                char with[EGRESS_MAX_ENTRY_LEN + 16];
                if (e.kind == EGRESS_ENTRY_NET && e.family == AF_INET6 && s[0] != '[')
                    snprintf(with, sizeof with, "[%s]:%d", s, b ? 443 : 80);
                else
                    snprintf(with, sizeof with, "%s:%d", s, b ? 443 : 80);
                if (egress_policy_add(p, with, deny, err) < 0)
                    return -1;
            }
            continue;
        }
        if (egress_policy_add(p, s, deny, err) < 0)
            return -1;
    }
    return 0;
}

static int s_get_uint(const json_t *v, const char *key, uint64_t max, uint64_t *out,
                      cb_error_t *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max)
        return cb_error_fail(err, CB_ERR_INVALID,
                             "network policy: '%s' must be an integer from 0 to %llu", key,
                             (unsigned long long)max);
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* One string: "none", "all", "ask" or a preset. */
static egress_policy_t *s_from_word(const char *s, cb_error_t *err)
{
    cleanup_policy egress_policy_t *p = s_policy_new();
    if (strcmp(s, "none") == 0)
        return steal_pointer(&p);
    if (strcmp(s, "all") == 0)
        return egress_policy_add(p, "*", false, err) < 0 ? NULL : steal_pointer(&p);
    if (strcmp(s, "ask") == 0) {
        p->ask = true;
        return steal_pointer(&p);
    }
    if (s_preset_find(s))
        return s_add_preset(p, s, err) < 0 ? NULL : steal_pointer(&p);
    cb_error_fail(err, CB_ERR_INVALID,
                  "network policy: unknown policy '%.64s' (none, all, ask, packages, or an "
                  "object with allow/deny lists)",
                  s);
    return NULL;
}

egress_policy_t *egress_policy_from_json(const json_t *spec, cb_error_t *err)
{
    if (!spec)
        return s_policy_new();
    if (json_is_string(spec))
        return s_from_word(json_string_value(spec), err);
    if (!json_is_object(spec)) {
        cb_error_fail(err, CB_ERR_INVALID, "network policy: must be a string or an object");
        return NULL;
    }
    cleanup_policy egress_policy_t *p = s_policy_new();
    /* E2B's allowHTTP / allowHTTPS restrict allowedDomains to ports 80 / 443. */
    const json_t *http = json_object_get(spec, "allowHTTP");
    const json_t *https = json_object_get(spec, "allowHTTPS");
    if ((http && !json_is_boolean(http)) || (https && !json_is_boolean(https))) {
        cb_error_fail(err, CB_ERR_INVALID, "network policy: allowHTTP/allowHTTPS must be booleans");
        return NULL;
    }
    unsigned ports = 0;
    if (http || https)
        ports = (json_is_true(http) ? 1u : 0u) | (json_is_true(https) ? 2u : 0u);
    bool internet_off = false;

    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)spec, key, v) {
        int rc = 0;
        uint64_t n;
        if (strcmp(key, "allow") == 0)
            rc = s_add_list(p, v, key, false, 0, false, err);
        else if (strcmp(key, "deny") == 0)
            rc = s_add_list(p, v, key, true, 0, false, err);
        else if (strcmp(key, "allowedDomains") == 0) {
            if ((http || https) && ports == 0) { /* both false: checked, but allow nothing */
                egress_policy_t *scratch = s_policy_new();
                rc = s_add_list(scratch, v, key, false, 0, false, err);
                egress_policy_destroy(&scratch);
            } else {
                rc = s_add_list(p, v, key, false, ports, false, err);
            }
        } else if (strcmp(key, "blockedDomains") == 0)
            rc = s_add_list(p, v, key, true, 0, false, err);
        else if (strcmp(key, "allowOut") == 0)
            rc = s_add_list(p, v, key, false, 0, false, err);
        else if (strcmp(key, "denyOut") == 0)
            rc = s_add_list(p, v, key, true, 0, true, err);
        else if (strcmp(key, "presets") == 0) {
            if (!json_is_array(v))
                rc = cb_error_fail(err, CB_ERR_INVALID, "network policy: 'presets' must be a list");
            size_t i;
            const json_t *pv;
            json_array_foreach (v, i, pv) {
                if (rc == 0 && !json_is_string(pv))
                    rc = cb_error_fail(err, CB_ERR_INVALID,
                                       "network policy: preset %zu is not a string", i);
                if (rc == 0)
                    rc = s_add_preset(p, json_string_value(pv), err);
            }
        } else if (strcmp(key, "ask") == 0) {
            if (!json_is_boolean(v))
                rc = cb_error_fail(err, CB_ERR_INVALID, "network policy: 'ask' must be a boolean");
            p->ask = json_is_true(v);
        } else if (strcmp(key, "max_connections") == 0) {
            rc = s_get_uint(v, key, 1000000, &n, err);
            p->max_connections = (unsigned)n;
        } else if (strcmp(key, "max_bytes") == 0) {
            rc = s_get_uint(v, key, UINT64_C(1) << 62, &n, err);
            p->max_bytes = n;
        } else if (strcmp(key, "allowInternetAccess") == 0) {
            if (!json_is_boolean(v))
                rc = cb_error_fail(err, CB_ERR_INVALID,
                                   "network policy: 'allowInternetAccess' must be a boolean");
            else if (json_is_false(v))
                internet_off = true;
            else if (!json_object_get(spec, "allowedDomains") &&
                     !json_object_get(spec, "allowOut") && !json_object_get(spec, "allow"))
                rc = egress_policy_add(p, "*", false, err);
        } else if (strcmp(key, "network") == 0) { /* E2B: {network: {allowOut, denyOut}} */
            if (!json_is_object(v))
                rc = cb_error_fail(err, CB_ERR_INVALID,
                                   "network policy: 'network' must be an object");
            const char *k2;
            json_t *v2;
            json_object_foreach (v, k2, v2) {
                if (rc < 0)
                    break;
                if (strcmp(k2, "allowOut") == 0)
                    rc = s_add_list(p, v2, k2, false, 0, false, err);
                else if (strcmp(k2, "denyOut") == 0)
                    rc = s_add_list(p, v2, k2, true, 0, true, err);
                else if (strcmp(k2, "allowPublicTraffic") != 0) /* inbound: not ours */
                    rc = cb_error_fail(err, CB_ERR_INVALID,
                                       "network policy: unknown key 'network.%s'", k2);
            }
        } else if (strcmp(key, "allowHTTP") != 0 && strcmp(key, "allowHTTPS") != 0) {
            rc = cb_error_fail(err, CB_ERR_INVALID, "network policy: unknown key '%s'", key);
        }
        if (rc < 0)
            return NULL;
    }
    if (internet_off) { /* E2B's allowInternetAccess: false wins over everything */
        p->n_allow = 0;
        p->ask = false;
    }
    return steal_pointer(&p);
}

egress_policy_t *egress_policy_from_string(const char *spec, cb_error_t *err)
{
    if (!spec || !*spec)
        return s_policy_new();
    if (!strchr(spec, '='))
        return s_from_word(spec, err);
    /* "allow=a,b;deny=c;presets=packages;ask=1;max_connections=N;max_bytes=N": into the JSON
     * form, so both share one validation. */
    json_auto_t *obj = json_object();
    cleanup_free char *copy = cb_xstrdup(spec);
    char *save = NULL;
    for (char *part = strtok_r(copy, ";", &save); part; part = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(part, '=');
        if (!eq) {
            cb_error_fail(err, CB_ERR_INVALID, "network policy: '%.64s' is not key=value", part);
            return NULL;
        }
        *eq = '\0';
        const char *key = part, *val = eq + 1;
        if (strcmp(key, "allow") == 0 || strcmp(key, "deny") == 0 || strcmp(key, "presets") == 0) {
            json_t *arr = json_object_get(obj, key);
            if (!arr) {
                arr = json_array();
                json_object_set_new(obj, key, arr);
            }
            /* keep empty items: they are errors ("empty entry") */
            const char *p = val;
            for (;;) {
                const char *comma = strchr(p, ',');
                size_t n = comma ? (size_t)(comma - p) : strlen(p);
                json_array_append_new(arr, json_stringn(p, n));
                if (!comma)
                    break;
                p = comma + 1;
            }
        } else if (strcmp(key, "ask") == 0) {
            json_object_set_new(obj, key,
                                json_boolean(strcmp(val, "1") == 0 ||
                                             strcasecmp(val, "true") == 0 ||
                                             strcasecmp(val, "yes") == 0));
        } else if (strcmp(key, "max_connections") == 0 || strcmp(key, "max_bytes") == 0) {
            char *end = NULL;
            unsigned long long n = strtoull(val, &end, 10);
            if (!*val || *end || val[0] == '-') {
                cb_error_fail(err, CB_ERR_INVALID, "network policy: '%s' must be a number", key);
                return NULL;
            }
            json_object_set_new(
                obj, key, json_integer((json_int_t)(n > (1ull << 62) ? (1ull << 62) + 1 : n)));
        } else {
            cb_error_fail(err, CB_ERR_INVALID, "network policy: unknown key '%.64s'", key);
            return NULL;
        }
    }
    return egress_policy_from_json(obj, err);
}

bool egress_policy_is_none(const egress_policy_t *self)
{
    return !self || (!self->ask && self->n_allow == 0);
}

json_t *egress_policy_describe(const egress_policy_t *self)
{
    json_t *allow = json_array(), *deny = json_array();
    char buf[EGRESS_MAX_ENTRY_LEN + 16];
    for (size_t i = 0; self && i < self->n_allow; i++) {
        egress_entry_format(&self->allow[i], buf, sizeof buf);
        json_array_append_new(allow, json_string(buf));
    }
    for (size_t i = 0; self && i < self->n_deny; i++) {
        egress_entry_format(&self->deny[i], buf, sizeof buf);
        json_array_append_new(deny, json_string(buf));
    }
    const char *mode = egress_policy_is_none(self) ? "none" : self->ask ? "ask" : "allow";
    return json_pack("{s:s, s:o, s:o, s:I, s:I}", "mode", mode, "allow", allow, "deny", deny,
                     "max_connections", (json_int_t)(self ? self->max_connections : 0), "max_bytes",
                     (json_int_t)(self ? self->max_bytes : 0));
}

/* ---- addresses ---- */

/* The IPv4 address an IPv6 one carries, if any (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d,
 * NAT64 64:ff9b::a.b.c.d, 6to4 2002:AABB:CCDD::). */
static bool s_embedded_v4(const uint8_t *a, uint8_t out[4])
{
    static const uint8_t zero[10] = {0};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b};
    if (memcmp(a, zero, 10) == 0 && ((a[10] == 0xff && a[11] == 0xff) ||
                                     (a[10] == 0 && a[11] == 0 && (a[12] | a[13] | a[14]) != 0))) {
        memcpy(out, a + 12, 4);
        return true;
    }
    if (memcmp(a, nat64, 12) == 0) {
        memcpy(out, a + 12, 4);
        return true;
    }
    if (a[0] == 0x20 && a[1] == 0x02) {
        memcpy(out, a + 2, 4);
        return true;
    }
    return false;
}

/* The family and bytes to judge: IPv4 for an IPv6 address carrying one. */
static int s_judged(const struct sockaddr *sa, uint8_t bytes[16], uint16_t *port)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(bytes, &in->sin_addr, 4);
        if (port)
            *port = ntohs(in->sin_port);
        return AF_INET;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    if (port)
        *port = ntohs(in6->sin6_port);
    if (s_embedded_v4(in6->sin6_addr.s6_addr, bytes))
        return AF_INET;
    memcpy(bytes, &in6->sin6_addr, 16);
    return AF_INET6;
}

typedef struct {
    int family;
    uint8_t net[16];
    unsigned prefix;
    const char *what;
} s_class_t;

/* First match wins: the more specific blocks come first. */
static const s_class_t s_classes[] = {
    {AF_INET, {169, 254, 169, 254}, 32, "a cloud metadata address"},
    {AF_INET, {100, 100, 100, 200}, 32, "a cloud metadata address"},
    {AF_INET, {255, 255, 255, 255}, 32, "the broadcast address"},
    {AF_INET, {0}, 8, "an unspecified (\"this network\") address"},
    {AF_INET, {10}, 8, "a private address"},
    {AF_INET, {100, 64}, 10, "a carrier-grade NAT address"},
    {AF_INET, {127}, 8, "a loopback address"},
    {AF_INET, {169, 254}, 16, "a link-local address"},
    {AF_INET, {172, 16}, 12, "a private address"},
    {AF_INET, {192, 0, 0}, 24, "a reserved address"},
    {AF_INET, {192, 0, 2}, 24, "a documentation address"},
    {AF_INET, {192, 168}, 16, "a private address"},
    {AF_INET, {198, 18}, 15, "a benchmarking address"},
    {AF_INET, {198, 51, 100}, 24, "a documentation address"},
    {AF_INET, {203, 0, 113}, 24, "a documentation address"},
    {AF_INET, {224}, 4, "a multicast address"},
    {AF_INET, {240}, 4, "a reserved address"},
    {AF_INET6, {0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, [15] = 0x54}, 128, "a cloud metadata address"},
    {AF_INET6, {0}, 128, "an unspecified address"},
    {AF_INET6, {[15] = 1}, 128, "a loopback address"},
    {AF_INET6, {0}, 96, "a reserved address"},
    {AF_INET6, {0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "a NAT64 local-use address"},
    {AF_INET6, {0x01, 0x00}, 64, "a discard-only address"},
    {AF_INET6, {0x20, 0x01, 0x0d, 0xb8}, 32, "a documentation address"},
    {AF_INET6, {0xfc}, 7, "a private (unique local) address"},
    {AF_INET6, {0xfe, 0x80}, 10, "a link-local address"},
    {AF_INET6, {0xfe, 0xc0}, 10, "a site-local address"},
    {AF_INET6, {0xff}, 8, "a multicast address"},
};

static bool s_in_block(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

const char *egress_address_class(const struct sockaddr *addr)
{
    uint8_t b[16];
    int family = s_judged(addr, b, NULL);
    for (size_t i = 0; i < sizeof s_classes / sizeof s_classes[0]; i++) {
        const s_class_t *c = &s_classes[i];
        if (c->family == family && s_in_block(b, c->net, c->prefix))
            return c->what;
    }
    return NULL;
}

void egress_address_text(const struct sockaddr *addr, char *buf, size_t size)
{
    uint8_t b[16];
    int family = s_judged(addr, b, NULL);
    char a[INET6_ADDRSTRLEN];
    inet_ntop(family, b, a, sizeof a);
    if (addr->sa_family == AF_INET6 && family == AF_INET) { /* both forms: what was asked, */
        char a6[INET6_ADDRSTRLEN];                          /* and what it was judged as */
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, a6, sizeof a6);
        snprintf(buf, size, "%s (%s)", a6, a);
        return;
    }
    snprintf(buf, size, "%s", a);
}

/* ---- verdicts ---- */

static bool s_port_ok(const egress_entry_t *e, uint16_t port)
{
    return !e->port || e->port == port;
}

static bool s_name_matches(const egress_entry_t *e, const char *host)
{
    if (e->kind == EGRESS_ENTRY_ANY)
        return true;
    if (e->kind == EGRESS_ENTRY_NAME)
        return strcmp(e->name, host) == 0;
    if (e->kind == EGRESS_ENTRY_WILD) {
        size_t hl = strlen(host), nl = strlen(e->name);
        return hl > nl + 1 && host[hl - nl - 1] == '.' && strcmp(host + hl - nl, e->name) == 0;
    }
    return false;
}

static bool s_net_matches(const egress_entry_t *e, int family, const uint8_t *b)
{
    return e->kind == EGRESS_ENTRY_NET && e->family == family && s_in_block(b, e->addr, e->prefix);
}

static egress_verdict_t s_refuse(const egress_policy_t *self, char *why, size_t why_size,
                                 const char *what, uint16_t port)
{
    if (why)
        snprintf(why, why_size, "%s:%u is not in the sandbox's allow list", what, port);
    return self->ask ? EGRESS_ASK : EGRESS_DENY;
}

static egress_verdict_t s_denied(char *why, size_t why_size, const char *what, uint16_t port,
                                 const egress_entry_t *e)
{
    if (why) {
        char ent[EGRESS_MAX_ENTRY_LEN + 16];
        egress_entry_format(e, ent, sizeof ent);
        snprintf(why, why_size, "%s:%u is in the sandbox's deny list ('%s')", what, port, ent);
    }
    return EGRESS_DENY;
}

egress_verdict_t egress_policy_check_name(const egress_policy_t *self, const char *host,
                                          uint16_t port, char *why, size_t why_size)
{
    if (egress_policy_is_none(self)) {
        if (why)
            snprintf(why, why_size, "the sandbox has no network access");
        return EGRESS_DENY;
    }
    char h[256];
    if (!host) { /* an address alone: only "*" can allow it here */
        for (size_t i = 0; i < self->n_deny; i++)
            if (self->deny[i].kind == EGRESS_ENTRY_ANY && s_port_ok(&self->deny[i], port))
                return s_denied(why, why_size, "*", port, &self->deny[i]);
        for (size_t i = 0; i < self->n_allow; i++)
            if (self->allow[i].kind == EGRESS_ENTRY_ANY && s_port_ok(&self->allow[i], port))
                return EGRESS_ALLOW;
        return s_refuse(self, why, why_size, "an address", port);
    }
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
        host++, n -= 2;
    if (n > 0 && host[n - 1] == '.')
        n--;
    if (n == 0 || n > 253) {
        if (why)
            snprintf(why, why_size, "the host name is empty or too long");
        return EGRESS_DENY;
    }
    for (size_t i = 0; i < n; i++)
        h[i] = (char)tolower((unsigned char)host[i]);
    h[n] = '\0';

    uint8_t b[16];
    struct sockaddr_in6 sa6 = {.sin6_family = AF_INET6};
    struct sockaddr_in sa4 = {.sin_family = AF_INET};
    const struct sockaddr *sa = NULL;
    if (inet_pton(AF_INET, h, &sa4.sin_addr) == 1)
        sa = (const struct sockaddr *)&sa4;
    else if (inet_pton(AF_INET6, h, &sa6.sin6_addr) == 1)
        sa = (const struct sockaddr *)&sa6;
    if (sa) { /* an address literal: "*" or an address entry decides, names never */
        int family = s_judged(sa, b, NULL);
        for (size_t i = 0; i < self->n_deny; i++) {
            const egress_entry_t *e = &self->deny[i];
            if ((e->kind == EGRESS_ENTRY_ANY || s_net_matches(e, family, b)) && s_port_ok(e, port))
                return s_denied(why, why_size, h, port, e);
        }
        for (size_t i = 0; i < self->n_allow; i++) {
            const egress_entry_t *e = &self->allow[i];
            if ((e->kind == EGRESS_ENTRY_ANY || s_net_matches(e, family, b)) && s_port_ok(e, port))
                return EGRESS_ALLOW;
        }
        return s_refuse(self, why, why_size, h, port);
    }
    if (!s_name_valid(h)) {
        if (why)
            snprintf(why, why_size, "'%.64s' is not a valid host name", h);
        return EGRESS_DENY;
    }
    for (size_t i = 0; i < self->n_deny; i++)
        if (s_name_matches(&self->deny[i], h) && s_port_ok(&self->deny[i], port))
            return s_denied(why, why_size, h, port, &self->deny[i]);
    for (size_t i = 0; i < self->n_allow; i++)
        if (s_name_matches(&self->allow[i], h) && s_port_ok(&self->allow[i], port))
            return EGRESS_ALLOW;
    return s_refuse(self, why, why_size, h, port);
}

egress_verdict_t egress_policy_check_address(const egress_policy_t *self, const void *addr,
                                             char *why, size_t why_size)
{
    const struct sockaddr *sa = addr;
    if (egress_policy_is_none(self)) {
        if (why)
            snprintf(why, why_size, "the sandbox has no network access");
        return EGRESS_DENY;
    }
    if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
        if (why)
            snprintf(why, why_size, "not an IP address");
        return EGRESS_DENY;
    }
    uint8_t b[16];
    uint16_t port;
    int family = s_judged(sa, b, &port);
    char text[INET6_ADDRSTRLEN + INET_ADDRSTRLEN + 4];
    egress_address_text(sa, text, sizeof text);
    for (size_t i = 0; i < self->n_deny; i++)
        if (s_net_matches(&self->deny[i], family, b) && s_port_ok(&self->deny[i], port))
            return s_denied(why, why_size, text, port, &self->deny[i]);
    for (size_t i = 0; i < self->n_allow; i++)
        if (s_net_matches(&self->allow[i], family, b) && s_port_ok(&self->allow[i], port))
            return EGRESS_ALLOW; /* named explicitly: even a refused class */
    const char *cls = egress_address_class(sa);
    if (cls) {
        if (why)
            snprintf(why, why_size, "%s is %s", text, cls);
        return EGRESS_DENY;
    }
    return EGRESS_ALLOW;
}
