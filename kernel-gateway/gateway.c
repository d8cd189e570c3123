/* gateway.c: placeholder until implemented. */
