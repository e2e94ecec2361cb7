/*
 * tap-relay: attaches to a Linux TAP interface and relays Ethernet frames
 * between it and stdin/stdout, each frame as a big-endian u32 length followed
 * by the frame. Disco spawns it because Node cannot issue TUNSETIFF.
 *
 *   tap-relay IFNAME           relay until stdin closes
 *   tap-relay --check IFNAME   open the interface and exit (0 if it works)
 *
 * Errors go to stderr as one line; the exit status is 2 when the interface
 * cannot be opened, 1 for other failures.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MAX_FRAME 65535

static int open_tap(const char *name) {
  if (strlen(name) == 0 || strlen(name) >= IFNAMSIZ) {
    fprintf(stderr, "tap-relay: '%s' is not an interface name\n", name);
    return -1;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "tap-relay: cannot open /dev/net/tun: %s\n", strerror(errno));
    return -1;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, strlen(name));
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    fprintf(stderr, "tap-relay: cannot attach to TAP %s: %s\n", name, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Reads exactly n bytes; 0 on success, 1 at end of file, -1 on error. */
static int read_all(int fd, uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) return 1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

int main(int argc, char **argv) {
  int check = argc == 3 && strcmp(argv[1], "--check") == 0;
  if (!(argc == 2 || check)) {
    fprintf(stderr, "usage: tap-relay [--check] IFNAME\n");
    return 1;
  }
  int tap = open_tap(argv[check ? 2 : 1]);
  if (tap < 0) return 2;
  if (check) return 0;
  signal(SIGPIPE, SIG_IGN);

  static uint8_t in[4 + MAX_FRAME], out[4 + MAX_FRAME];
  struct pollfd fds[2] = { { .fd = 0, .events = POLLIN }, { .fd = tap, .events = POLLIN } };
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "tap-relay: poll: %s\n", strerror(errno));
      return 1;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      /* A whole record from Disco: the writer never leaves one half written for long. */
      int r = read_all(0, in, 4);
      if (r != 0) return r > 0 ? 0 : 1;
      uint32_t len = ((uint32_t)in[0] << 24) | ((uint32_t)in[1] << 16) | ((uint32_t)in[2] << 8) | in[3];
      if (len < 14 || len > MAX_FRAME) {
        fprintf(stderr, "tap-relay: bad frame length %u from Disco\n", len);
        return 1;
      }
      r = read_all(0, in + 4, len);
      if (r != 0) return r > 0 ? 0 : 1;
      /* The kernel may refuse a frame (interface down): a lost frame, as on a wire. */
      if (write(tap, in + 4, len) < 0 && errno != EIO && errno != EINVAL && errno != ENOBUFS && errno != EAGAIN) {
        fprintf(stderr, "tap-relay: write to TAP: %s\n", strerror(errno));
        return 1;
      }
    }
    if (fds[1].revents & POLLIN) {
      ssize_t n = read(tap, out + 4, MAX_FRAME);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        fprintf(stderr, "tap-relay: read from TAP: %s\n", strerror(errno));
        return 1;
      }
      if (n < 14) continue;
      out[0] = (uint8_t)(n >> 24); out[1] = (uint8_t)(n >> 16); out[2] = (uint8_t)(n >> 8); out[3] = (uint8_t)n;
      if (write_all(1, out, (size_t)n + 4) < 0) return errno == EPIPE ? 0 : 1;
    } else if (fds[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
      fprintf(stderr, "tap-relay: the TAP interface went away\n");
      return 1;
    }
  }
}
