/* version: batchd's version, set by the Makefile from the VERSION file. */
#ifndef BATCHD_VERSION
#define BATCHD_VERSION "0.0.0-dev"
#endif
