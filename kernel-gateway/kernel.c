/* kernel.c: placeholder until implemented. */
