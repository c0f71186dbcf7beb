/* cmdline.h - the multiboot command line as argv-like words. QEMU passes the kernel's
 * file name as the first word (argv[0]), then the -append string. */
#ifndef CMDLINE_H
#define CMDLINE_H
#include "libc.h"

/* The command line (flags bit 2), or "" when the loader gave none. */
const char *cmdline_get(const struct multiboot_info *mbi);
/* Copy word n (0 = the kernel's name) into buf; returns its length, -1 if there is none. */
int cmdline_word(const char *cl, int n, char *buf, int size);
int cmdline_words(const char *cl); /* number of words, argv[0] included */
/* 1 if some word after argv[0] equals `word`. */
int cmdline_has(const char *cl, const char *word);
/* For a word "key=N" after argv[0] (decimal, or hex with 0x), store N and return 1. */
int cmdline_u64(const char *cl, const char *key, u64 *val);
/* "rounds=N" (1..1000, default 1): how many times an image repeats its main work, so that
 * benchmarks can time the steady state apart from start-up. */
u64 cmdline_rounds(uint32_t mbi_addr);

#endif
