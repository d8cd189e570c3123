/* audit.c: the audit trail (fleet.h). A first shape: the interface the surfaces call; the
 * writer, batching, rotation and reading come with issue 18's audit work. */
#include "fleet_private.h"

void fleet_audit(fleet_t *fleet, kg_sandbox_t *sb, const char *tenant, const char *event,
                 json_t *fields)
{
    (void)fleet, (void)sb, (void)tenant, (void)event;
    json_decref(fields);
}

json_t *fleet_audit_read(const char *state_dir, const fleet_audit_query_t *q, cb_error_t *err)
{
    (void)state_dir, (void)q, (void)err;
    return json_array();
}

const char *fleet_state_dir(fleet_t *fleet) { return fleet->state_dir; }
