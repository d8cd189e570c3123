/* wire.c: placeholder until implemented. */
