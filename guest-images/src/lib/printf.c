/* printf.c - a small printf over putc.
 * Conversions: %s %c %d %i %u %x %X %p %%; length modifiers l, ll, z;
 * flags '-' (left-justify), '0' (zero-pad), '#' (0x prefix for %x); field width
 * (digits or '*'). snprintf formats into a buffer instead of the serial port. */
#include "libc.h"

/* Output sink: the serial port, or a buffer while snprintf runs (not reentrant). */
static char *sink_buf;
static size_t sink_len, sink_pos;

static int emit(char c)
{
    if (sink_buf) {
        if (sink_pos + 1 < sink_len)
            sink_buf[sink_pos] = c;
        sink_pos++;
    } else {
        putc(c);
    }
    return 1;
}

static int pad(int n, char c)
{
    int w = 0;
    while (n-- > 0)
        w += emit(c);
    return w;
}

/* Format one integer: digits of v in base, sign/prefix, width and padding. */
static int fmt_num(uint64_t v, int neg, unsigned base, int upper, int width, int zero, int left,
                   const char *prefix)
{
    char buf[24];
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    int n = 0, w = 0;
    do {
        buf[n++] = digits[v % base];
        v /= base;
    } while (v);
    int plen = (int)strlen(prefix) + (neg ? 1 : 0);
    int fill = width - n - plen;
    if (!left && !zero)
        w += pad(fill, ' ');
    if (neg)
        w += emit('-');
    for (const char *p = prefix; *p; p++)
        w += emit(*p);
    if (!left && zero)
        w += pad(fill, '0');
    while (n)
        w += emit(buf[--n]);
    if (left)
        w += pad(fill, ' ');
    return w;
}

int vprintf(const char *fmt, va_list ap)
{
    int written = 0;
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            written += emit(*fmt);
            continue;
        }
        fmt++;
        int left = 0, zero = 0, alt = 0, width = 0, lng = 0;
        for (;; fmt++) {
            if (*fmt == '-')
                left = 1;
            else if (*fmt == '0')
                zero = 1;
            else if (*fmt == '#')
                alt = 1;
            else
                break;
        }
        if (*fmt == '*') {
            width = va_arg(ap, int);
            fmt++;
        } else {
            while (*fmt >= '0' && *fmt <= '9')
                width = width * 10 + (*fmt++ - '0');
        }
        /* lng: 1 when the argument is 64 bits wide (ll always; l and z on LP64 only,
         * so the same code also serves the 32-bit images). */
        while (*fmt == 'l' || *fmt == 'z') {
            if (*fmt == 'z' ? sizeof(size_t) == 8 : (fmt[1] == 'l' || sizeof(long) == 8))
                lng = 1;
            fmt++;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            uint64_t mag = v < 0 ? -(uint64_t)v : (uint64_t)v;
            written += fmt_num(mag, v < 0, 10, 0, width, zero, left, "");
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            unsigned base = *fmt == 'u' ? 10 : 16;
            written += fmt_num(v, 0, base, *fmt == 'X', width, zero, left,
                               alt && base == 16 ? "0x" : "");
            break;
        }
        case 'p':
            written += fmt_num((uint64_t)(uintptr_t)va_arg(ap, void *), 0, 16, 0, width, zero, left, "0x");
            break;
        case 'c': {
            int fill = width - 1;
            if (!left)
                written += pad(fill, ' ');
            written += emit((char)va_arg(ap, int));
            if (left)
                written += pad(fill, ' ');
            break;
        }
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            int fill = width - (int)strlen(s);
            if (!left)
                written += pad(fill, ' ');
            while (*s)
                written += emit(*s++);
            if (left)
                written += pad(fill, ' ');
            break;
        }
        case '%':
            written += emit('%');
            break;
        case '\0':
            return written;
        default: /* unknown conversion: print it verbatim */
            written += emit('%');
            written += emit(*fmt);
            break;
        }
    }
    return written;
}

int printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int snprintf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sink_buf = buf;
    sink_len = n;
    sink_pos = 0;
    int w = vprintf(fmt, ap);
    if (n)
        buf[sink_pos < n ? sink_pos : n - 1] = 0;
    sink_buf = 0;
    va_end(ap);
    return w;
}
