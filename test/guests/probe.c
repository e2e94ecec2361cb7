/*
 * Test guests for the hypervisor (test/hypervisor.test.ts), one program with
 * a mode chosen at build time:
 *
 *   VICTIM   fills its RAM with a marker, then re-checks it forever
 *   HOSTILE  looks for the marker everywhere it can reach: every page of its
 *            RAM, the guest-physical space below and above it, and through
 *            virtio-rng DMA aimed outside its RAM
 *   SPIN     a runaway guest: an endless loop that never waits
 *   SPIN_SMP the same on every hart (the others started through SBI HSM)
 *   FLOOD    floods its console
 *   IDLE     says so, then waits for interrupts forever (none come)
 *
 * Output goes through SBI DBCN (console_write_byte).
 */
#include <stdint.h>

#define MARKER 0x3234524b52414d44ull /* "DMARKR42" */
#define DRAM 0x80000000ull
#define VIRTIO 0x10001000ull
extern volatile uint64_t faults;
extern char _end[];

static void putc_(char c) {
  register uint64_t a0 asm("a0") = (uint8_t)c;
  register uint64_t a6 asm("a6") = 2;
  register uint64_t a7 asm("a7") = 0x4442434e;
  asm volatile("ecall" : "+r"(a0) : "r"(a6), "r"(a7) : "a1", "memory");
}
static void puts_(const char *s) { while (*s) putc_(*s++); }
static void putn(uint64_t v) {
  char b[24]; int i = 0;
  do { b[i++] = '0' + v % 10; v /= 10; } while (v);
  while (i) putc_(b[--i]);
}
static void puthex(uint64_t v) {
  puts_("0x");
  for (int i = 60; i >= 0; i -= 4) putc_("0123456789abcdef"[(v >> i) & 15]);
}

/* A load that may fault: 4 bytes long (the trap handler skips 4). Returns the faults seen. */
static uint64_t load(uint64_t addr, uint64_t *out) {
  uint64_t before = faults, v = 0;
  asm volatile(".option push\n.option norvc\nld %0, 0(%1)\n.option pop" : "+r"(v) : "r"(addr) : "memory");
  *out = v;
  return faults - before;
}

/* The end of RAM: the first page above DRAM that faults. */
static uint64_t ram_end(void) {
  uint64_t v, a = DRAM;
  while (a < DRAM + (4ull << 30) && load(a, &v) == 0) a += 1 << 20;
  return a;
}

#if defined(VICTIM)
int main(void) {
  uint64_t end = ram_end();
  uint64_t start = ((uint64_t)_end + 4095) & ~4095ull;
  for (uint64_t a = start; a < end; a += 8) *(volatile uint64_t *)a = MARKER;
  puts_("victim: filled "); putn((end - start) >> 12); puts_(" pages\n");
  for (uint64_t pass = 1;; pass++) {
    uint64_t bad = 0;
    for (uint64_t a = start; a < end; a += 64) if (*(volatile uint64_t *)a != MARKER) bad++;
    puts_(bad ? "victim: CORRUPTED pass " : "victim: intact pass "); putn(pass); putc_('\n');
  }
}
#elif defined(SPIN)
int main(void) {
  puts_("spin: start\n");
  for (volatile uint64_t n = 0;; n++) {}
}
#elif defined(SPIN_SMP)
extern char secondary_spin[];
int main(void) {
  /* SBI HSM hart_start (SBI spec 9.1) for every other hart there is; each spins. */
  uint64_t started = 0;
  for (uint64_t h = 1; h < 8; h++) {
    register uint64_t a0 asm("a0") = h;
    register uint64_t a1 asm("a1") = (uint64_t)(uintptr_t)secondary_spin;
    register uint64_t a2 asm("a2") = 0;
    register uint64_t a6 asm("a6") = 0;
    register uint64_t a7 asm("a7") = 0x48534d;
    asm volatile("ecall" : "+r"(a0), "+r"(a1) : "r"(a2), "r"(a6), "r"(a7) : "memory");
    if (a0 != 0) break;
    started++;
  }
  puts_("spin: start, harts started "); putn(started); putc_('\n');
  for (volatile uint64_t n = 0;; n++) {}
}
#elif defined(IDLE)
int main(void) {
  puts_("idle: start\n");
  return 0;
}
#elif defined(FLOOD)
int main(void) {
  puts_("flood: start\n");
  for (;;) puts_("flood flood flood flood flood flood flood flood flood flood flood flood\n");
}
#elif defined(HOSTILE)
#define R32(a) (*(volatile uint32_t *)(uintptr_t)(a))
#define W32(a, v) (*(volatile uint32_t *)(uintptr_t)(a) = (v))

static inline uint64_t rdtime_(void) { uint64_t t; asm volatile("rdtime %0" : "=r"(t)); return t; }

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
static struct desc ring_desc[8] __attribute__((aligned(4096)));
static volatile uint16_t ring_avail[2 + 8 + 1] __attribute__((aligned(4096)));
static volatile uint32_t ring_used[1 + 2 * 8 + 1] __attribute__((aligned(4096)));

/* Sets up virtio-rng's queue 0 with one write-only buffer at `target`; returns the status after the notify. */
static uint32_t dma(uint64_t dev, uint64_t target, uint32_t len, uint64_t desc_at) {
  W32(dev + 0x70, 0);                       /* reset */
  W32(dev + 0x70, 1); W32(dev + 0x70, 3);   /* ACKNOWLEDGE, DRIVER */
  W32(dev + 0x24, 1); W32(dev + 0x20, 1);   /* DriverFeatures[1] = VERSION_1 */
  W32(dev + 0x24, 0); W32(dev + 0x20, 0);
  W32(dev + 0x70, 11);                      /* FEATURES_OK */
  if (!(R32(dev + 0x70) & 8)) return 0xffff;
  W32(dev + 0x30, 0);                       /* QueueSel */
  W32(dev + 0x38, 8);                       /* QueueNum */
  W32(dev + 0x80, (uint32_t)desc_at); W32(dev + 0x84, desc_at >> 32);
  W32(dev + 0x90, (uint32_t)(uintptr_t)ring_avail); W32(dev + 0x94, 0);
  W32(dev + 0xa0, (uint32_t)(uintptr_t)ring_used); W32(dev + 0xa4, 0);
  W32(dev + 0x44, 1);                       /* QueueReady */
  W32(dev + 0x70, 15);                      /* DRIVER_OK */
  ring_desc[0].addr = target; ring_desc[0].len = len; ring_desc[0].flags = 2; ring_desc[0].next = 0;
  ring_avail[0] = 0; ring_avail[2] = 0;
  for (int i = 0; i < 18; i++) ring_used[i] = 0;
  asm volatile("fence" ::: "memory");
  ring_avail[1] = 1;
  asm volatile("fence" ::: "memory");
  W32(dev + 0x50, 0);                       /* QueueNotify */
  /* The device answers from another thread: wait by the clock (5 s of 10 MHz mtime), not by a spin count. */
  for (uint64_t t0 = rdtime_(); (ring_used[0] >> 16) == 0 && !(R32(dev + 0x70) & 0x40) && rdtime_() - t0 < 50000000ull;) {}
  return R32(dev + 0x70) | ((ring_used[0] >> 16) << 16);
}

int main(void) {
  uint64_t v, end = ram_end(), hits = 0, pages = 0;
  /* 1. Every page of its own RAM: fresh frames must be zero, never another VM's data. */
  for (uint64_t a = DRAM; a < end; a += 4096, pages++)
    for (uint64_t o = 0; o < 4096; o += 256) if (*(volatile uint64_t *)(a + o) == MARKER) hits++;
  puts_("hostile: ram pages "); putn(pages); puts_(" marker hits "); putn(hits); putc_('\n');
  /* 2. Guest-physical space outside RAM: below it every 64 KiB, above it by the MiB, and far away. */
  uint64_t reads = 0, faulted = 0, outside_hits = 0;
  for (uint64_t a = 0; a < DRAM; a += 0x10000) {
    if (a >= VIRTIO && a < VIRTIO + 0x8000) continue; /* its own devices: reading them has effects */
    if (load(a, &v)) faulted++; else { reads++; if (v == MARKER) outside_hits++; }
  }
  for (uint64_t a = end; a < (1ull << 34); a += 1 << 20) { if (load(a, &v)) faulted++; else { reads++; if (v == MARKER) outside_hits++; } }
  static const uint64_t far[] = { 1ull << 40, 1ull << 47, 1ull << 55, 0xfffffffffffff000ull };
  for (unsigned i = 0; i < sizeof far / sizeof far[0]; i++) { if (load(far[i], &v)) faulted++; else { reads++; if (v == MARKER) outside_hits++; } }
  puts_("hostile: outside reads "); putn(reads); puts_(" faults "); putn(faulted); puts_(" marker hits "); putn(outside_hits); putc_('\n');
  /* 3. DMA: virtio-rng writing where the guest has no RAM. */
  uint64_t dev = 0;
  for (int n = 0; n < 8; n++) if (R32(VIRTIO + n * 0x1000 + 8) == 4) dev = VIRTIO + n * 0x1000;
  if (!dev) { puts_("hostile: no virtio-rng\n"); return 0; }
  static const uint64_t targets[] = { 0x1000, 0x100000, 0x7ffff000ull, 0, 1ull << 33, 1ull << 40, 0xffffffffffffffc0ull };
  uint64_t refused = 0, done = 0;
  for (unsigned i = 0; i < sizeof targets / sizeof targets[0]; i++) {
    uint64_t t = targets[i] ? targets[i] : end - 32; /* 0: straddling the end of RAM */
    uint32_t st = dma(dev, t, 64, (uint64_t)(uintptr_t)ring_desc);
    puts_("hostile: dma to "); puthex(t); puts_(" status "); puthex(st & 0xffff); puts_(" used "); putn(st >> 16); putc_('\n');
    if (st & 0x40) refused++; else done++;
  }
  /* The descriptor table itself outside RAM. */
  uint32_t st = dma(dev, (uint64_t)(uintptr_t)&faults, 8, 1ull << 36);
  puts_("hostile: dma with its ring outside RAM status "); puthex(st & 0xffff); putc_('\n');
  if (st & 0x40) refused++; else done++;
  puts_("hostile: dma refused "); putn(refused); puts_(" completed "); putn(done); putc_('\n');
  /* Its own RAM still works for DMA. */
  st = dma(dev, end - 4096, 64, (uint64_t)(uintptr_t)ring_desc);
  puts_("hostile: dma into its RAM used "); putn(st >> 16); putc_('\n');
  puts_("hostile: done\n");
  return 0;
}
#else
#error "choose VICTIM, HOSTILE, SPIN, FLOOD or IDLE"
#endif
