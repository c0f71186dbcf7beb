/* cmdline.c - argv-like access to the multiboot command line (see cmdline.h). */
#include "cmdline.h"

const char *cmdline_get(const struct multiboot_info *mbi)
{
    if (!(mbi->flags & (1u << 2)) || !mbi->cmdline)
        return "";
    return (const char *)(uintptr_t)mbi->cmdline;
}

static const char *word_at(const char *cl, int n, int *len)
{
    for (int i = 0;; i++) {
        while (*cl == ' ')
            cl++;
        if (!*cl)
            return 0;
        const char *s = cl;
        while (*cl && *cl != ' ')
            cl++;
        if (i == n) {
            *len = (int)(cl - s);
            return s;
        }
    }
}

int cmdline_word(const char *cl, int n, char *buf, int size)
{
    int len;
    const char *s = word_at(cl, n, &len);
    if (!s)
        return -1;
    int k = len < size - 1 ? len : size - 1;
    memcpy(buf, s, (size_t)k);
    buf[k] = 0;
    return len;
}

int cmdline_words(const char *cl)
{
    int n = 0, len;
    while (word_at(cl, n, &len))
        n++;
    return n;
}

int cmdline_has(const char *cl, const char *word)
{
    int len, wl = (int)strlen(word);
    const char *s;
    for (int i = 1; (s = word_at(cl, i, &len)); i++)
        if (len == wl && !memcmp(s, word, (size_t)wl))
            return 1;
    return 0;
}

int cmdline_u64(const char *cl, const char *key, u64 *val)
{
    int len, kl = (int)strlen(key);
    const char *s;
    for (int i = 1; (s = word_at(cl, i, &len)); i++) {
        if (len <= kl + 1 || memcmp(s, key, (size_t)kl) || s[kl] != '=')
            continue;
        const char *p = s + kl + 1, *end = s + len;
        unsigned base = 10;
        if (end - p > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
            base = 16;
            p += 2;
        }
        u64 v = 0;
        for (; p < end; p++) {
            unsigned d;
            if (*p >= '0' && *p <= '9')
                d = (unsigned)(*p - '0');
            else if (base == 16 && (*p | 0x20) >= 'a' && (*p | 0x20) <= 'f')
                d = (unsigned)((*p | 0x20) - 'a' + 10);
            else
                return 0;
            v = v * base + d;
        }
        *val = v;
        return 1;
    }
    return 0;
}

u64 cmdline_rounds(uint32_t mbi_addr)
{
    u64 r = 1;
    cmdline_u64(cmdline_get((const struct multiboot_info *)(uintptr_t)mbi_addr), "rounds", &r);
    return r < 1 ? 1 : r > 1000 ? 1000 : r;
}
