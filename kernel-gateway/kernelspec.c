/* kernelspec.c: placeholder until implemented. */
