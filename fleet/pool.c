/* pool.c: warm pools: per template, a number of sandboxes already made, their main kernel
 * started and the template's startup code run, waiting to be handed out by fleet_sandbox_open.
 *
 * A pooled sandbox is an ordinary engine sandbox, hidden from clients, whose fleet record is
 * marked in_pool; it is in its pool's member list until fleet_pool_take removes it (once: the list is the only way to it) or it goes. The tick
 * refills each pool by one sandbox per turn, so a refill never blocks the loop for more than one
 * sandbox's setup. Pooled sandboxes count against the cap; they are given up first when an
 * open needs the room. A template whose sandboxes keep failing to start backs off (one second,
 * doubling up to a minute) instead of spinning.
 */
#include <errno.h>
#include <string.h>

#include "cb/cleanup.h"
#include "cb/log.h"
#include "cb/alloc.h"
#include "cb/util.h"
#include "fleet_private.h"
#include "kg/gateway.h"
#include "kg/sandbox.h"
#include "kg/kernel.h"

#define FLEET_POOL_MAX 64
#define FLEET_POOL_BACKOFF_MAX_MS 60000

struct fleet_pool {
    fleet_template_t *template;
    int size;          /* asked for */
    zlistx_t *members; /* fleet_sandbox_t *, in_pool */
    int64_t retry_ms;  /* no refill before this (after a failure) */
    int backoff_ms;
};

static void s_pool_free(void **item)
{
    fleet_pool_t *p = *item;
    if (!p)
        return;
    zlistx_destroy(&p->members);
    fleet_template_destroy(&p->template);
    free(p);
    *item = NULL;
}

static bool s_is_ready(const fleet_sandbox_t *fs)
{
    return fs->main_kernel && kg_kernel_is_ready(fs->main_kernel) && !kg_sandbox_ending(fs->sb);
}

static size_t s_ready(fleet_pool_t *p)
{
    size_t n = 0;
    for (fleet_sandbox_t *fs = zlistx_first(p->members); fs; fs = zlistx_next(p->members))
        n += s_is_ready(fs);
    return n;
}

static void s_back_off(fleet_t *fleet, fleet_pool_t *p)
{
    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : 1000;
    if (p->backoff_ms > FLEET_POOL_BACKOFF_MAX_MS)
        p->backoff_ms = FLEET_POOL_BACKOFF_MAX_MS;
    p->retry_ms = fleet_now_ms(fleet) + p->backoff_ms;
}

static void s_give_up(fleet_pool_t *p, fleet_sandbox_t *fs)
{
    void *h = zlistx_find(p->members, fs);
    if (h)
        zlistx_detach(p->members, h);
    fs->in_pool = false;
    kg_sandbox_t *sb = fs->sb;
    kg_sandbox_destroy(&sb);
}

int fleet_set_pool(fleet_t *fleet, const char *template_name, int size, cb_error_t *err)
{
    if (size < 0 || size > FLEET_POOL_MAX)
        return cb_error_fail(err, CB_ERR_INVALID, "a pool holds 0 to %d sandboxes, not %d",
                             FLEET_POOL_MAX, size);
    fleet_template_t *t = fleet_template_find(fleet->templates_dir, template_name, err);
    if (!t)
        return -1;
    if (!fleet->pools) {
        if (!(fleet->pools = zhashx_new()))
            cb_oom(sizeof(zhashx_t *));
        zhashx_set_destructor(fleet->pools, s_pool_free);
    }
    fleet_pool_t *p = zhashx_lookup(fleet->pools, t->name);
    if (!p) {
        p = cb_xcalloc(1, sizeof *p);
        if (!(p->members = zlistx_new()))
            cb_oom(sizeof(zlistx_t *));
        zhashx_insert(fleet->pools, t->name, p);
        p->template = steal_pointer(&t);
    }
    fleet_template_destroy(&t); /* an existing pool keeps the template it was made with */
    p->size = size;
    while ((int)zlistx_size(p->members) > size)
        s_give_up(p, zlistx_last(p->members));
    cb_info("warm pool for template %s: %d sandbox(es)", p->template->name, size);
    return 0;
}

int fleet_pool_size(fleet_t *fleet, const char *template_name)
{
    fleet_pool_t *p = fleet->pools ? zhashx_lookup(fleet->pools, template_name) : NULL;
    return p ? p->size : 0;
}

kg_sandbox_t *fleet_pool_take(fleet_t *fleet, const char *template_name)
{
    fleet_pool_t *p = fleet->pools ? zhashx_lookup(fleet->pools, template_name) : NULL;
    for (fleet_sandbox_t *fs = p ? zlistx_first(p->members) : NULL; fs;
         fs = zlistx_next(p->members)) {
        if (!s_is_ready(fs))
            continue;
        zlistx_detach_cur(p->members);
        fs->in_pool = false;
        fs->from_pool = true;
        kg_sandbox_set_hidden(fs->sb, false);
        return fs->sb;
    }
    return NULL;
}

bool fleet_pool_evict_one(fleet_t *fleet, const char *keep)
{
    fleet_pool_t *victim = NULL;
    for (fleet_pool_t *p = fleet->pools ? zhashx_first(fleet->pools) : NULL; p;
         p = zhashx_next(fleet->pools)) {
        if (zlistx_size(p->members) == 0)
            continue;
        if (!victim || strcmp(p->template->name, keep) != 0)
            victim = p;
    }
    if (!victim)
        return false;
    cb_info("pool %s: giving up a pooled sandbox to make room", victim->template->name);
    s_give_up(victim, zlistx_last(victim->members));
    return true;
}

void fleet_pool_forget(fleet_t *fleet, fleet_sandbox_t *fs)
{
    if (!fs->in_pool || !fleet->pools)
        return;
    for (fleet_pool_t *p = zhashx_first(fleet->pools); p; p = zhashx_next(fleet->pools)) {
        void *h = zlistx_find(p->members, fs);
        if (!h)
            continue;
        zlistx_detach(p->members, h);
        if (kg_sandbox_ending(fs->sb) && fs->end_why == FLEET_END_FAILED)
            s_back_off(fleet, p);
    }
    fs->in_pool = false;
}

void fleet_pool_refill(fleet_t *fleet)
{
    int max = fleet->cfg.max_sandboxes ? fleet->cfg.max_sandboxes : 100;
    int64_t now = fleet_now_ms(fleet);
    for (fleet_pool_t *p = fleet->pools ? zhashx_first(fleet->pools) : NULL; p;
         p = zhashx_next(fleet->pools)) {
        if ((int)zlistx_size(p->members) >= p->size || now < p->retry_ms)
            continue;
        if (max >= 0 && kg_gateway_sandbox_count(fleet->gw) >= (size_t)max)
            return; /* the cap holds for the pool too */
        cb_error_t err = {0};
        kg_sandbox_t *sb =
            fleet_sandbox_prepare(fleet, p->template, &(fleet_sandbox_opts_t){0}, NULL, NULL, &err);
        if (!sb) {
            s_back_off(fleet, p);
            cb_warn("pool %s: cannot make a sandbox (next try in %d s): %s", p->template->name,
                    p->backoff_ms / 1000, err.msg);
            continue;
        }
        fleet_sandbox_t *fs = fleet_sandbox_of(sb);
        if (!zlistx_add_end(p->members, fs))
            cb_oom(sizeof(void *));
        fs->in_pool = true;
        kg_sandbox_set_hidden(sb, true);
        p->backoff_ms = 0;
        kg_sandbox_log(sb, "sandbox", "made for the warm pool of template %s", p->template->name);
    }
}

size_t fleet_pool_count(fleet_t *fleet, size_t *starting)
{
    size_t n = 0, s = 0;
    for (fleet_pool_t *p = fleet->pools ? zhashx_first(fleet->pools) : NULL; p;
         p = zhashx_next(fleet->pools)) {
        size_t ready = s_ready(p);
        n += zlistx_size(p->members);
        s += zlistx_size(p->members) - ready;
    }
    if (starting)
        *starting = s;
    return n;
}

json_t *fleet_pool_metrics(fleet_t *fleet)
{
    json_t *templates = json_object();
    for (fleet_pool_t *p = fleet->pools ? zhashx_first(fleet->pools) : NULL; p && templates;
         p = zhashx_next(fleet->pools)) {
        size_t ready = s_ready(p);
        json_object_set_new(templates, p->template->name,
                            json_pack("{s:i, s:I, s:I}", "size", p->size, "ready",
                                      (json_int_t)ready, "starting",
                                      (json_int_t)(zlistx_size(p->members) - ready)));
    }
    return json_pack("{s:I, s:I, s:o*}", "hits", (json_int_t)fleet->counters.pool_hits, "misses",
                     (json_int_t)fleet->counters.pool_misses, "templates", templates);
}

void fleet_pool_destroy_all(fleet_t *fleet)
{
    for (fleet_pool_t *p = fleet->pools ? zhashx_first(fleet->pools) : NULL; p;
         p = zhashx_next(fleet->pools))
        while (zlistx_size(p->members) > 0)
            s_give_up(p, zlistx_first(p->members));
    zhashx_destroy(&fleet->pools);
}
