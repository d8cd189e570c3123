/* attach.c: placeholder until implemented. */
