/* connfile.c: placeholder until implemented. */
