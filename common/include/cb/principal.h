/* cb/principal.h: who is asking. Every sandbox, session, kernel, exposed port and audit record
 * belongs to a tenant (a name); a request acts for a principal, a tenant with or without the
 * admin role. A principal may reach what its tenant owns; an admin may reach everything. Every
 * surface (MCP, the Jupyter API, E2B's API, port forwards, the page) answers an id the
 * principal may not reach exactly as it answers an unknown id: "not found".
 *
 *   - the single CELLBLOCK_TOKEN (or the generated one) is CB_TENANT_ADMIN, an admin;
 *   - a tokens file names the others (docs/security.md, "Tenants");
 *   - the stdio MCP server and the CLI act as CB_TENANT_LOCAL, an admin of its own process.
 */
#ifndef CB_PRINCIPAL_H
#define CB_PRINCIPAL_H

#include <stdbool.h>
#include <string.h>

#define CB_TENANT_ADMIN "admin"
#define CB_TENANT_LOCAL "local"
#define CB_TENANT_NAME_MAX 64 /* a tenant's name: [A-Za-z0-9._-]{1,64}, not starting with '.' */

typedef struct {
    const char *tenant; /* never NULL; borrowed from whoever made the principal */
    bool admin;
} cb_principal_t;

/* The principal of the stdio MCP server and the CLI. */
static const cb_principal_t CB_PRINCIPAL_LOCAL = {CB_TENANT_LOCAL, true};

/* Whether who may reach something the tenant owner owns (NULL owner: only an admin). A
 * principal with an empty tenant (a sandbox token's) owns nothing, not even what an empty
 * owner names. */
static inline bool cb_principal_may(const cb_principal_t *who, const char *owner)
{
    if (!who)
        return false;
    if (who->admin)
        return true;
    return owner && who->tenant && who->tenant[0] && strcmp(who->tenant, owner) == 0;
}

/* Whether name is a valid tenant name (see CB_TENANT_NAME_MAX). */
static inline bool cb_tenant_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > CB_TENANT_NAME_MAX || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

#endif
