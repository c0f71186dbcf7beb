/* check.c - PASS/FAIL reporting shared by every image. */
#include "libc.h"

static unsigned n_checks, n_failed;
static int quiet;

void check_quiet(int on) { quiet = on; }

int check(const char *name, int ok)
{
    n_checks++;
    if (!ok)
        n_failed++;
    if (!ok || !quiet)
        printf("%s: %s\n", ok ? "PASS" : "FAIL", name);
    return ok;
}

int check_eq(const char *name, uint64_t got, uint64_t want)
{
    int ok = got == want;
    check(name, ok);
    if (!ok)
        printf("      got %#llx, want %#llx\n", (unsigned long long)got, (unsigned long long)want);
    return ok;
}

unsigned check_failures(void) { return n_failed; }

void check_finish(void)
{
    int ok = n_checks > 0 && n_failed == 0;
    printf("%s: %u checks, %u failed\n", ok ? "ALL PASSED" : "FAILED", n_checks, n_failed);
    exit(ok ? EXIT_PASS : EXIT_FAIL);
}
