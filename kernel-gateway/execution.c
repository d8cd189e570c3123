/* execution.c: placeholder until implemented. */
