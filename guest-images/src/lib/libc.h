/* libc.h - the tiny freestanding C library shared by every guest image. */
#ifndef LIBC_H
#define LIBC_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int32_t i32;
typedef int64_t i64;

/* Exit codes written to the isa-debug-exit port 0xf4 (QEMU status = code*2+1). */
#define EXIT_PASS 0x10 /* QEMU exit status 33 */
#define EXIT_FAIL 0x11 /* QEMU exit status 35 */

/* serial.c: COM1 at 0x3f8, polled. */
void serial_init(void);
void putc(int c);
void puts(const char *s); /* writes s and a newline */

/* printf.c: %s %c %d %i %u %x %X %p, length l/ll/z, flags '-' '0', field width. */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
int snprintf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* string.c */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

/* exit.c: write code to port 0xf4, then cli; hlt forever. The write is 8 bits wide
 * unless an image sets exit_port_width to 2 or 4 (pc-contract uses 4). */
__attribute__((noreturn)) void exit(int code);
extern int exit_port_width;

/* check.c: verdict helpers. Every image prints "PASS: name" / "FAIL: name" lines and
 * ends with check_finish(), which prints a summary and exits 0x10 (all passed) or
 * 0x11 (some failed, or no check ran at all). */
int check(const char *name, int ok);                         /* returns ok */
int check_eq(const char *name, uint64_t got, uint64_t want); /* prints got/want on failure */
unsigned check_failures(void);
void check_quiet(int on); /* 1: count checks but print only failures (warm-up rounds) */
__attribute__((noreturn)) void check_finish(void);

/* Symbols from the linker script / boot stub. */
extern char __image_start[], __bss_start[], __bss_end[], _end[];
extern uint64_t boot_pml4[512], boot_pdpt[512], boot_pd[4 * 512];
extern char boot_stack_top[];

/* Multiboot v1 information structure (the fields images use). */
struct multiboot_info {
    uint32_t flags;
    uint32_t mem_lower; /* KiB below 1 MiB, valid if flags bit 0 */
    uint32_t mem_upper; /* KiB above 1 MiB, valid if flags bit 0 */
    uint32_t boot_device;
    uint32_t cmdline;
    uint32_t mods_count;
    uint32_t mods_addr;
    uint32_t syms[4];
    uint32_t mmap_length;
    uint32_t mmap_addr;
};
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u

#endif
