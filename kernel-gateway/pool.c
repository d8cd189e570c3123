/* pool.c: warm pools: per template, a number of sandboxes already made, their main kernel
 * started and the template's startup code run, waiting to be handed out by kg_sandbox_open.
 *
 * A pooled sandbox is an ordinary gateway sandbox marked in_pool; it is in its pool's member
 * list until kg_pool_take removes it (once: the list is the only way to it) or it goes. The tick
 * refills each pool by one sandbox per turn, so a refill never blocks the loop for more than one
 * sandbox's setup. Pooled sandboxes count against the cap; they are given up first when an
 * open needs the room. A template whose sandboxes keep failing to start backs off (one second,
 * doubling up to a minute) instead of spinning.
 */
#include <errno.h>
#include <string.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "kg_private.h"

#define KG_POOL_MAX 64
#define KG_POOL_BACKOFF_MAX_MS 60000

struct kg_pool {
    kg_template_t *template;
    int size;               /* asked for */
    zlistx_t *members;      /* kg_sandbox_t *, in_pool */
    int64_t retry_ms;       /* no refill before this (after a failure) */
    int backoff_ms;
};

static void s_pool_free(void **item)
{
    kg_pool_t *p = *item;
    if (!p)
        return;
    zlistx_destroy(&p->members);
    kg_template_destroy(&p->template);
    free(p);
    *item = NULL;
}

static size_t s_ready(kg_pool_t *p)
{
    size_t n = 0;
    for (kg_sandbox_t *sb = zlistx_first(p->members); sb; sb = zlistx_next(p->members))
        n += sb->main_kernel && kg_kernel_is_ready(sb->main_kernel) && !sb->end_pending;
    return n;
}

static void s_back_off(kg_pool_t *p)
{
    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : 1000;
    if (p->backoff_ms > KG_POOL_BACKOFF_MAX_MS)
        p->backoff_ms = KG_POOL_BACKOFF_MAX_MS;
    p->retry_ms = cb_now_ms() + p->backoff_ms;
}

static void s_give_up(kg_pool_t *p, kg_sandbox_t *sb)
{
    void *h = zlistx_find(p->members, sb);
    if (h)
        zlistx_detach(p->members, h);
    sb->in_pool = false;
    kg_sandbox_destroy(&sb);
}

int kg_gateway_set_pool(kg_gateway_t *gw, const char *template_name, int size, cb_error_t *err)
{
    if (size < 0 || size > KG_POOL_MAX)
        return cb_error_fail(err, CB_ERR_INVALID, "a pool holds 0 to %d sandboxes, not %d", KG_POOL_MAX, size);
    kg_template_t *t = kg_template_find(gw->templates_dir, template_name, err);
    if (!t)
        return -1;
    if (!gw->pools) {
        gw->pools = zhashx_new();
        if (gw->pools)
            zhashx_set_destructor(gw->pools, s_pool_free);
    }
    kg_pool_t *p = gw->pools ? zhashx_lookup(gw->pools, t->name) : NULL;
    if (!p && gw->pools && (p = calloc(1, sizeof *p)) && (p->members = zlistx_new()) &&
        zhashx_insert(gw->pools, t->name, p) == 0) {
        p->template = steal_pointer(&t);
    } else if (p && !p->members) {
        free(p);
        p = NULL;
    }
    kg_template_destroy(&t); /* an existing pool keeps the template it was made with */
    if (!p)
        return cb_error_make(err, ENOMEM, "new pool");
    p->size = size;
    while ((int)zlistx_size(p->members) > size)
        s_give_up(p, zlistx_last(p->members));
    cb_info("warm pool for template %s: %d sandbox(es)", p->template->name, size);
    return 0;
}

int kg_pool_size(kg_gateway_t *gw, const char *template_name)
{
    kg_pool_t *p = gw->pools ? zhashx_lookup(gw->pools, template_name) : NULL;
    return p ? p->size : 0;
}

kg_sandbox_t *kg_pool_take(kg_gateway_t *gw, const char *template_name)
{
    kg_pool_t *p = gw->pools ? zhashx_lookup(gw->pools, template_name) : NULL;
    for (kg_sandbox_t *sb = p ? zlistx_first(p->members) : NULL; sb; sb = zlistx_next(p->members)) {
        if (!sb->main_kernel || !kg_kernel_is_ready(sb->main_kernel) || sb->end_pending)
            continue;
        zlistx_detach_cur(p->members);
        sb->in_pool = false;
        sb->from_pool = true;
        return sb;
    }
    return NULL;
}

bool kg_pool_evict_one(kg_gateway_t *gw, const char *keep)
{
    kg_pool_t *victim = NULL;
    for (kg_pool_t *p = gw->pools ? zhashx_first(gw->pools) : NULL; p; p = zhashx_next(gw->pools)) {
        if (zlistx_size(p->members) == 0)
            continue;
        if (!victim || strcmp(p->template->name, keep) != 0)
            victim = p;
    }
    if (!victim)
        return false;
    kg_sandbox_t *sb = zlistx_last(victim->members);
    cb_info("pool %s: giving up a pooled sandbox to make room", victim->template->name);
    s_give_up(victim, sb);
    return true;
}

void kg_pool_forget(kg_gateway_t *gw, kg_sandbox_t *sb)
{
    if (!sb->in_pool || !gw->pools)
        return;
    for (kg_pool_t *p = zhashx_first(gw->pools); p; p = zhashx_next(gw->pools)) {
        void *h = zlistx_find(p->members, sb);
        if (!h)
            continue;
        zlistx_detach(p->members, h);
        if (sb->end_pending && sb->end_why == KG_SANDBOX_END_FAILED)
            s_back_off(p);
    }
    sb->in_pool = false;
}

void kg_pool_refill(kg_gateway_t *gw)
{
    int max = gw->cfg.max_sandboxes ? gw->cfg.max_sandboxes : 100;
    int64_t now = cb_now_ms();
    for (kg_pool_t *p = gw->pools ? zhashx_first(gw->pools) : NULL; p; p = zhashx_next(gw->pools)) {
        if ((int)zlistx_size(p->members) >= p->size || now < p->retry_ms)
            continue;
        if (max >= 0 && zhashx_size(gw->sandboxes) >= (size_t)max)
            return; /* the cap holds for the pool too */
        cb_error_t err = {0};
        kg_sandbox_t *sb = kg_sandbox_prepare(gw, p->template, &(kg_sandbox_opts_t){0}, NULL, NULL, &err);
        if (!sb || !zlistx_add_end(p->members, sb)) {
            s_back_off(p);
            cb_warn("pool %s: cannot make a sandbox (next try in %d s): %s", p->template->name,
                    p->backoff_ms / 1000, err.msg[0] ? err.msg : "out of memory");
            kg_sandbox_destroy(&sb);
            continue;
        }
        sb->in_pool = true;
        p->backoff_ms = 0;
        kg_sandbox_log(sb, "sandbox", "made for the warm pool of template %s", p->template->name);
    }
}

size_t kg_pool_count(kg_gateway_t *gw, size_t *starting)
{
    size_t n = 0, s = 0;
    for (kg_pool_t *p = gw->pools ? zhashx_first(gw->pools) : NULL; p; p = zhashx_next(gw->pools)) {
        size_t ready = s_ready(p);
        n += zlistx_size(p->members);
        s += zlistx_size(p->members) - ready;
    }
    if (starting)
        *starting = s;
    return n;
}

json_t *kg_pool_metrics(kg_gateway_t *gw)
{
    json_t *templates = json_object();
    for (kg_pool_t *p = gw->pools ? zhashx_first(gw->pools) : NULL; p && templates; p = zhashx_next(gw->pools)) {
        size_t ready = s_ready(p);
        json_object_set_new(templates, p->template->name,
                            json_pack("{s:i, s:I, s:I}", "size", p->size, "ready", (json_int_t)ready, "starting",
                                      (json_int_t)(zlistx_size(p->members) - ready)));
    }
    return json_pack("{s:I, s:I, s:o*}", "hits", (json_int_t)gw->counters.pool_hits, "misses",
                     (json_int_t)gw->counters.pool_misses, "templates", templates);
}

void kg_pool_destroy_all(kg_gateway_t *gw)
{
    for (kg_pool_t *p = gw->pools ? zhashx_first(gw->pools) : NULL; p; p = zhashx_next(gw->pools))
        while (zlistx_size(p->members) > 0)
            s_give_up(p, zlistx_first(p->members));
    zhashx_destroy(&gw->pools);
}
